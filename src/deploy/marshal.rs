//! The few types of Python's `marshal` format the single file's index needs, so the
//! boot code can load the index with the builtin `marshal.loads` before any other
//! module can be imported.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

pub enum Value {
    Int(i32),
    Str(String),
    Tuple(Vec<Value>),
    Dict(BTreeMap<String, Value>),
}

impl Value {
    /// A tuple of non-negative ints, which marshal stores in 32 bits.
    pub fn ints(values: &[usize]) -> Result<Value> {
        let int = |&n: &usize| match i32::try_from(n) {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => bail!("the single file would be larger than 2 GiB"),
        };
        Ok(Value::Tuple(values.iter().map(int).collect::<Result<_>>()?))
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(text) => {
                out.push(b'u');
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Value::Tuple(items) => {
                out.push(b'(');
                out.extend_from_slice(&(items.len() as u32).to_le_bytes());
                items.iter().for_each(|item| item.write(out));
            }
            Value::Dict(map) => {
                out.push(b'{');
                for (key, value) in map {
                    Value::Str(key.clone()).write(out);
                    value.write(out);
                }
                out.push(b'0');
            }
        }
    }
}
