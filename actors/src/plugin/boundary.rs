//! The panic boundary: every call into plugin code goes through [`guard`].
//!
//! actix does not restart a panicked actor (its mailbox just closes), and a panic unwinding through
//! an actor would take its whole arbiter thread down with every other session on it. So plugin
//! calls are wrapped in `catch_unwind`; the caller turns a caught panic into an error for that
//! request and cleans the handle up.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A caught plugin panic, with its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginPanic(pub String);

/// Runs `f`, catching a panic. The plugin's state may be inconsistent after a panic, which is why
/// callers never touch that plugin session again (AssertUnwindSafe is sound under that rule).
pub fn guard<T>(f: impl FnOnce() -> T) -> Result<T, PluginPanic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| PluginPanic(panic_message(payload.as_ref())))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches() {
        assert_eq!(guard(|| 5), Ok(5));
        let r: Result<(), _> = guard(|| panic!("boom {}", 1));
        assert_eq!(r, Err(PluginPanic("boom 1".into())));
    }
}
