//! Field validation with the core's exact wording.
//!
//! Plugins call these with their own error codes, so "Missing mandatory element (x)" and
//! "Invalid element type (x should be y)" read the same everywhere.

use std::fmt;

use serde_json::{Map, Value};

/// The JSON type words Janus uses in "should be ..." messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// "a string"
    String,
    /// "a boolean"
    Boolean,
    /// "an integer"
    Integer,
    /// "a positive integer" (Janus means non-negative)
    PositiveInteger,
    /// "an object"
    Object,
    /// "an array"
    Array,
    /// "a non-empty string"
    NonEmptyString,
    /// "a non-empty array"
    NonEmptyArray,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::String => "a string",
            Kind::Boolean => "a boolean",
            Kind::Integer => "an integer",
            Kind::PositiveInteger => "a positive integer",
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::NonEmptyString => "a non-empty string",
            Kind::NonEmptyArray => "a non-empty array",
        })
    }
}

/// A field validation failure, before it is given a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// The field is absent.
    Missing(String),
    /// The field has the wrong type.
    Type(String, Kind),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(name) => write!(f, "Missing mandatory element ({name})"),
            FieldError::Type(name, kind) => write!(f, "Invalid element type ({name} should be {kind})"),
        }
    }
}

impl From<FieldError> for super::ApiError {
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::Missing(name) => super::ApiError::missing(&name),
            FieldError::Type(name, kind) => super::ApiError::invalid_type(&name, kind),
        }
    }
}

/// Typed, wording-exact accessors over a JSON object.
pub trait Fields {
    /// An optional string field.
    fn opt_str(&self, name: &str) -> Result<Option<&str>, FieldError>;
    /// A mandatory string field.
    fn req_str(&self, name: &str) -> Result<&str, FieldError>;
    /// An optional boolean field.
    fn opt_bool(&self, name: &str) -> Result<Option<bool>, FieldError>;
    /// A mandatory boolean field.
    fn req_bool(&self, name: &str) -> Result<bool, FieldError>;
    /// An optional non-negative integer.
    fn opt_u64(&self, name: &str) -> Result<Option<u64>, FieldError>;
    /// A mandatory non-negative integer.
    fn req_u64(&self, name: &str) -> Result<u64, FieldError>;
    /// An optional signed integer.
    fn opt_i64(&self, name: &str) -> Result<Option<i64>, FieldError>;
    /// An optional object.
    fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, FieldError>;
    /// An optional array.
    fn opt_array(&self, name: &str) -> Result<Option<&Vec<Value>>, FieldError>;
}

impl Fields for Map<String, Value> {
    fn opt_str(&self, name: &str) -> Result<Option<&str>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FieldError::Type(name.into(), Kind::String)),
        }
    }

    fn req_str(&self, name: &str) -> Result<&str, FieldError> {
        self.opt_str(name)?.ok_or_else(|| FieldError::Missing(name.into()))
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(FieldError::Type(name.into(), Kind::Boolean)),
        }
    }

    fn req_bool(&self, name: &str) -> Result<bool, FieldError> {
        self.opt_bool(name)?.ok_or_else(|| FieldError::Missing(name.into()))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                None => Err(FieldError::Type(name.into(), Kind::PositiveInteger)),
            },
            Some(_) => Err(FieldError::Type(name.into(), Kind::PositiveInteger)),
        }
    }

    fn req_u64(&self, name: &str) -> Result<u64, FieldError> {
        self.opt_u64(name)?.ok_or_else(|| FieldError::Missing(name.into()))
    }

    fn opt_i64(&self, name: &str) -> Result<Option<i64>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => Err(FieldError::Type(name.into(), Kind::Integer)),
            },
            Some(_) => Err(FieldError::Type(name.into(), Kind::Integer)),
        }
    }

    fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(FieldError::Type(name.into(), Kind::Object)),
        }
    }

    fn opt_array(&self, name: &str) -> Result<Option<&Vec<Value>>, FieldError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(FieldError::Type(name.into(), Kind::Array)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn wording() {
        let m = obj(json!({"a": 1, "b": "x", "c": -1}));
        assert_eq!(m.req_str("a").unwrap_err().to_string(), "Invalid element type (a should be a string)");
        assert_eq!(m.req_str("z").unwrap_err().to_string(), "Missing mandatory element (z)");
        assert_eq!(m.opt_u64("c").unwrap_err().to_string(), "Invalid element type (c should be a positive integer)");
        assert_eq!(m.opt_bool("b").unwrap_err().to_string(), "Invalid element type (b should be a boolean)");
        assert_eq!(m.req_u64("a").unwrap(), 1);
    }
}
