//! Assertions on Janus replies: error shape, code table, and id masking so that whole replies can
//! be compared with the reference transcripts (section 13).

use serde_json::Value;

/// Every core error code of the reference table (section 2.1), without 0 (success).
pub const ERROR_CODES: &[u64] = &[
    403, 405, 450, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464, 465, 466, 467, 468, 469, 470, 471,
    472, 490,
];

/// Placeholder that [`mask_ids`] puts in place of random ids.
pub const ID: &str = "<id>";

/// Asserts `reply` is `{"janus":"error",...,"error":{"code":code,"reason":reason}}`.
#[track_caller]
pub fn assert_error(reply: &Value, code: u64, reason: &str) {
    assert_eq!(reply["janus"], "error", "expected an error {code} {reason:?}, got {reply}");
    assert_eq!(reply["error"]["code"], code, "error code in {reply}");
    assert_eq!(reply["error"]["reason"], reason, "error reason in {reply}");
}

/// Asserts `reply` is an error with `code` and a non-empty reason; returns the reason.
#[track_caller]
pub fn assert_error_code(reply: &Value, code: u64) -> String {
    assert_eq!(reply["janus"], "error", "expected an error {code}, got {reply}");
    assert_eq!(reply["error"]["code"], code, "error code in {reply}");
    let reason = reply["error"]["reason"].as_str().unwrap_or_else(|| panic!("error without a reason: {reply}"));
    assert!(!reason.is_empty(), "empty reason in {reply}");
    reason.to_owned()
}

/// A copy of `v` where the numbers under `session_id`, `handle_id`, `sender` and `data.id` are
/// replaced with [`ID`], for comparing replies that carry random ids.
pub fn mask_ids(v: &Value) -> Value {
    let mut v = v.clone();
    mask_in(&mut v);
    v
}

fn mask_in(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map.iter_mut() {
                let is_id = matches!(k.as_str(), "session_id" | "handle_id" | "sender");
                if is_id && inner.is_u64() {
                    *inner = Value::from(ID);
                } else if k == "data" {
                    if let Some(id) = inner.get_mut("id").filter(|id| id.is_u64()) {
                        *id = Value::from(ID);
                    }
                    mask_in(inner);
                } else {
                    mask_in(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_in),
        _ => {}
    }
}
