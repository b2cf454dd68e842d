//! Finding the state dict inside an unpickled checkpoint.

use std::collections::HashSet;
use std::fmt;
use std::rc::Rc;

use crate::pickle::{truncate, TensorRef, Unpickled, Value};
use crate::Error;

/// A small non-tensor value found at the top level of a checkpoint
/// (e.g. `total_steps`, `epoch`), or a description of a larger one.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraValue {
    /// Python `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (truncated to 200 characters).
    Str(String),
    /// Anything else, described ("dict with 2 entries", "torch.optim.adam.Adam object", ...).
    Other(String),
}

impl fmt::Display for ExtraValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraValue::None => f.write_str("None"),
            ExtraValue::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            ExtraValue::Int(i) => write!(f, "{i}"),
            ExtraValue::Float(x) => write!(f, "{x}"),
            ExtraValue::Str(s) => write!(f, "{s:?}"),
            ExtraValue::Other(d) => f.write_str(d),
        }
    }
}

/// Keys under which checkpoints commonly keep their state dict.
const STATE_DICT_KEYS: [&str; 3] = ["model", "state_dict", "model_state_dict"];

pub(crate) struct Selection {
    pub tensors: Vec<(String, Rc<TensorRef>)>,
    pub extra_keys: Vec<String>,
    pub extras: Vec<(String, ExtraValue)>,
    pub total_steps: Option<i64>,
    pub skipped: Vec<(String, String)>,
}

fn key_string(k: &Value, u: &Unpickled) -> String {
    match k {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => format!("<{}>", other.describe(u)),
    }
}

fn extra_value(v: &Value, u: &Unpickled) -> ExtraValue {
    match v {
        Value::None => ExtraValue::None,
        Value::Bool(b) => ExtraValue::Bool(*b),
        Value::Int(i) => ExtraValue::Int(*i),
        Value::Float(x) => ExtraValue::Float(*x),
        Value::Str(s) => ExtraValue::Str(truncate(s, 200)),
        other => ExtraValue::Other(other.describe(u)),
    }
}

fn has_tensor(d: usize, u: &Unpickled) -> bool {
    u.dicts[d]
        .entries
        .iter()
        .any(|(_, v)| matches!(v, Value::Tensor(_)))
}

/// Picks the state dict: `model` / `state_dict` / `model_state_dict` entry of
/// the top-level dict, or the top-level dict itself when it holds tensors.
pub(crate) fn select(u: &Unpickled) -> Result<Selection, Error> {
    let root = u
        .root
        .as_ref()
        .ok_or_else(|| Error::NoStateDict("empty pickle".into()))?;
    let top = match root {
        Value::Dict(d) => *d,
        Value::Tensor(_) => {
            return Err(Error::NoStateDict(
                "the file holds a single tensor, not a dict of named tensors".into(),
            ))
        }
        Value::Object(name) => {
            return Err(Error::NoStateDict(format!(
                "the file holds a pickled Python object ({name}) instead of a state dict; \
                 only state dicts can be read safely (re-save it with \
                 torch.save(model.state_dict(), path))"
            )))
        }
        other => {
            return Err(Error::NoStateDict(format!(
                "the top level is a {}, not a dict",
                other.describe(u)
            )))
        }
    };
    let top_dict = &u.dicts[top];

    let mut chosen: Option<(&str, usize)> = None;
    for k in STATE_DICT_KEYS {
        match top_dict.get(k) {
            Some(Value::Dict(d)) if has_tensor(*d, u) || u.dicts[*d].entries.is_empty() => {
                chosen = Some((k, *d));
                break;
            }
            Some(Value::Object(name)) if !has_tensor(top, u) => {
                return Err(Error::NoStateDict(format!(
                    "entry '{k}' is a pickled Python object ({name}), not a state dict; \
                     only state dicts can be read safely (re-save it with \
                     torch.save(model.state_dict(), path))"
                )))
            }
            _ => {}
        }
    }

    let mut sel = Selection {
        tensors: Vec::new(),
        extra_keys: Vec::new(),
        extras: Vec::new(),
        total_steps: None,
        skipped: Vec::new(),
    };
    let add_extra = |sel: &mut Selection, name: String, v: &Value| {
        if name == "total_steps" {
            if let Value::Int(i) = v {
                sel.total_steps = Some(*i);
            }
        }
        sel.extras.push((name.clone(), extra_value(v, u)));
        sel.extra_keys.push(name);
    };

    match chosen {
        Some((chosen_key, sd)) => {
            for (k, v) in &top_dict.entries {
                let name = key_string(k, u);
                if name != chosen_key {
                    add_extra(&mut sel, name, v);
                }
            }
            for (k, v) in &u.dicts[sd].entries {
                let name = key_string(k, u);
                match v {
                    Value::Tensor(t) => sel.tensors.push((name, t.clone())),
                    other => sel.skipped.push((name, other.describe(u))),
                }
            }
        }
        None => {
            // An empty dict is an empty state dict (`torch.save({})`, a model
            // without parameters), as a safetensors file without tensors is;
            // a dict of other things is not one.
            if !has_tensor(top, u) && !top_dict.entries.is_empty() {
                let keys: Vec<String> = top_dict
                    .entries
                    .iter()
                    .take(20)
                    .map(|(k, _)| key_string(k, u))
                    .collect();
                return Err(Error::NoStateDict(format!(
                    "the top-level dict (keys: {}) holds no tensors and no 'model' or \
                     'state_dict' entry",
                    if keys.is_empty() {
                        "none".to_owned()
                    } else {
                        keys.join(", ")
                    }
                )));
            }
            for (k, v) in &top_dict.entries {
                let name = key_string(k, u);
                match v {
                    Value::Tensor(t) => sel.tensors.push((name, t.clone())),
                    other => add_extra(&mut sel, name, other),
                }
            }
        }
    }

    // DataParallel checkpoints prefix every key with "module.".
    let mut seen = HashSet::new();
    for (name, _) in sel.tensors.iter_mut() {
        if let Some(stripped) = name.strip_prefix("module.") {
            *name = stripped.to_owned();
        }
        if !seen.insert(name.clone()) {
            return Err(Error::tensor(
                Some(name),
                "appears twice in the state dict (once with a 'module.' prefix?)",
            ));
        }
    }
    Ok(sel)
}
