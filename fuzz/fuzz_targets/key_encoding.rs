//! Redis key encoding: injective, and never a hash-tag brace or a separator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::store::encode_key_part;

fuzz_target!(|input: (String, String)| {
    let (a, b) = input;
    let (ea, eb) = (encode_key_part(&a), encode_key_part(&b));
    for e in [&ea, &eb] {
        assert!(!e.is_empty());
        assert!(
            !e.contains(['{', '}', ':']),
            "separator or hash tag in {e:?}"
        );
    }
    if a != b {
        assert_ne!(ea, eb, "{a:?} and {b:?} encode alike");
    } else {
        assert_eq!(ea, eb);
    }
    // Prefix-freeness for joined keys: `enc(a) + ":" + enc(b)` splits back
    // at the first ':' into exactly the two parts.
    let joined = format!("{ea}:{eb}");
    assert_eq!(joined.split_once(':'), Some((ea.as_str(), eb.as_str())));
});
