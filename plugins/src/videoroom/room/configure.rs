//! The per-stream changes of a subscriber `configure`, read from its `streams` list (or the legacy
//! top-level keys) and checked before any stream changes. Pure: it knows the subscription only
//! through the mids it has, and the room applies what it returns.

use portunus_actors::api::validate::Fields;
use serde_json::{Map, Value};

use crate::videoroom::errors::*;

/// Janus compat (8.2): the `streams` items of a subscriber `configure`, every one checked before
/// any is applied, so a refused request changes nothing. Items are checked in order and the first
/// fault wins: a key of the wrong type (430, see [`check_types`]), no `mid` in a list of several
/// (430), a `mid` the subscription lacks (428), a layer out of 0..=2 (430, see
/// [`check_layer_ranges`]). An item without `mid` is for every stream of the subscription.
///
/// Without `streams`, the legacy form: the [`LEGACY_KEYS`] found at the top level of the body make
/// one item (none when there are none), checked the same way.
pub(super) fn stream_changes(
    body: &Map<String, Value>,
    has_mid: impl Fn(&str) -> bool,
) -> Result<Vec<Map<String, Value>>, VrError> {
    let Some(list) = body.opt_array("streams")? else {
        let item: Map<String, Value> = LEGACY_KEYS
            .iter()
            .filter_map(|&k| Some((k.to_owned(), body.get(k).filter(|v| !v.is_null())?.clone())))
            .collect();
        if item.is_empty() {
            return Ok(Vec::new());
        }
        check_item(&item, 1, &has_mid)?;
        return Ok(vec![item]);
    };
    for item in list.iter().filter_map(Value::as_object) {
        check_item(item, list.len(), &has_mid)?;
    }
    Ok(list.iter().filter_map(Value::as_object).cloned().collect())
}

/// One item of a list of `len`: see [`stream_changes`] for what is refused and in which order.
fn check_item(item: &Map<String, Value>, len: usize, has_mid: &impl Fn(&str) -> bool) -> Result<(), VrError> {
    check_types(item)?;
    match item.opt_str("mid")? {
        None if len > 1 => {
            return Err(VrError::new(INVALID_ELEMENT, "Invalid value (mid can't be null in a streams array)"));
        }
        Some(mid) if !has_mid(mid) => {
            return Err(VrError::new(NO_SUCH_FEED, format!("No such mid '{mid}' in subscription")));
        }
        _ => {}
    }
    check_layer_ranges(item)
}

/// Janus compat (8.2): the item's keys in Janus's order, each of its type: `mid` a string, `send` a
/// boolean, the layers and `fallback` non-negative integers ("Invalid element type (substream
/// should be a positive integer)"), the delays integers.
fn check_types(item: &Map<String, Value>) -> Result<(), VrError> {
    for key in LEGACY_KEYS {
        match key {
            "mid" => item.opt_str(key).map(drop)?,
            "send" => item.opt_bool(key).map(drop)?,
            "min_delay" | "max_delay" => item.opt_i64(key).map(drop)?,
            _ => item.opt_u64(key).map(drop)?,
        }
    }
    Ok(())
}

/// Janus compat (8.2): a layer out of 0..=2 is refused with 430: `substream`/`spatial_layer` and
/// `temporal`/`temporal_layer` share one message each, as in Janus.
fn check_layer_ranges(item: &Map<String, Value>) -> Result<(), VrError> {
    let out_of_range = |key: &str| {
        item.get(key).is_some_and(|v| match v.as_i64() {
            Some(n) => !(0..=2).contains(&n),
            None => v.is_u64(),
        })
    };
    for (keys, what) in [
        (["substream", "spatial_layer"], "substream/spatial_layer"),
        (["temporal", "temporal_layer"], "temporal/temporal_layer"),
    ] {
        if keys.iter().any(|k| out_of_range(k)) {
            return Err(VrError::new(INVALID_ELEMENT, format!("Invalid value ({what} should be 0, 1 or 2)")));
        }
    }
    Ok(())
}

/// The per-stream keys Janus reads at the top level of a subscriber `configure` without `streams`,
/// in the order Janus checks their types.
const LEGACY_KEYS: [&str; 9] =
    ["mid", "send", "substream", "temporal", "fallback", "spatial_layer", "temporal_layer", "min_delay", "max_delay"];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!("tests pass objects") };
        m
    }

    /// The changes of `body` for a subscription with mids "0" and "1".
    fn changes(body: Value) -> Result<Vec<Map<String, Value>>, (u16, String)> {
        stream_changes(&obj(body), |mid| mid == "0" || mid == "1").map_err(|e| (e.code, e.error))
    }

    #[test]
    fn a_mid_the_subscription_lacks_is_428_even_after_good_items() {
        let body = json!({"streams": [{"mid": "1", "send": false}, {"mid": "7", "send": false}]});
        assert_eq!(changes(body), Err((428, "No such mid '7' in subscription".into())));
    }

    #[test]
    fn an_item_without_mid_is_430_only_in_a_list_of_several() {
        let body = json!({"streams": [{"mid": "1"}, {"send": false}]});
        assert_eq!(changes(body), Err((430, "Invalid value (mid can't be null in a streams array)".into())));
        assert_eq!(changes(json!({"streams": [{"send": false}]})).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn the_first_faulty_item_decides_the_error() {
        let layer = json!({"streams": [{"mid": "1", "substream": 3}, {"mid": "7"}]});
        assert_eq!(changes(layer), Err((430, "Invalid value (substream/spatial_layer should be 0, 1 or 2)".into())));
        let mid = json!({"streams": [{"mid": "7"}, {"mid": "1", "temporal": 3}]});
        assert_eq!(changes(mid).map_err(|e| e.0), Err(428));
    }

    #[test]
    fn a_mid_that_is_not_a_string_is_430() {
        let body = json!({"streams": [{"mid": 1}]});
        assert_eq!(changes(body), Err((430, "Invalid element type (mid should be a string)".into())));
    }

    #[test]
    fn keys_of_the_wrong_type_are_430_in_janus_order() {
        let cases = [
            (json!({"mid": "1", "substream": "1"}), "substream should be a positive integer"),
            (json!({"mid": "1", "temporal_layer": -1}), "temporal_layer should be a positive integer"),
            (json!({"mid": "1", "send": "yes"}), "send should be a boolean"),
            (json!({"mid": "1", "fallback": 1.5}), "fallback should be a positive integer"),
            (json!({"mid": "1", "min_delay": "0"}), "min_delay should be an integer"),
            // Types come before the mid lookup, and `send` before the layers.
            (json!({"mid": "7", "substream": 3, "send": 1}), "send should be a boolean"),
        ];
        for (item, why) in cases {
            let got = changes(json!({"streams": [item.clone()]}));
            assert_eq!(got, Err((430, format!("Invalid element type ({why})"))), "{item}");
        }
        assert_eq!(changes(json!({"mid": "1", "substream": "0"})).map_err(|e| e.0), Err(430), "legacy form too");
    }

    #[test]
    fn the_legacy_form_makes_one_item_of_the_top_level_keys() {
        let body = json!({"request": "configure", "mid": "1", "send": false, "substream": 0, "restart": true});
        assert_eq!(changes(body), Ok(vec![obj(json!({"mid": "1", "send": false, "substream": 0}))]));
        assert_eq!(changes(json!({"request": "configure", "temporal": 1})).map(|v| v.len()), Ok(1));
        assert_eq!(changes(json!({"request": "configure", "restart": true})), Ok(Vec::new()));
    }

    #[test]
    fn the_legacy_form_is_checked_like_an_item() {
        let mid = json!({"request": "configure", "mid": "7", "send": false});
        assert_eq!(changes(mid), Err((428, "No such mid '7' in subscription".into())));
        let layer = json!({"request": "configure", "mid": "1", "temporal_layer": 3});
        assert_eq!(changes(layer), Err((430, "Invalid value (temporal/temporal_layer should be 0, 1 or 2)".into())));
    }

    #[test]
    fn good_items_come_back_in_order() {
        let body = json!({"streams": [{"mid": "1", "substream": 2}, {"mid": "0", "send": false}]});
        let mids: Vec<_> = changes(body).unwrap().iter().map(|i| i["mid"].clone()).collect();
        assert_eq!(mids, [json!("1"), json!("0")]);
    }
}
