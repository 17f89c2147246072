//! The unit of export: a Pool together with the Engine and the Model it names, looked up in the
//! objects export was given.

use llorch_manifests::{AnyObject, Engine, Kind, Model, ObjectRef, Pool};

use super::refusal::{Refusal, Unexportable};

/// One Pool with its Engine and Model.
#[derive(Clone, Copy, Debug)]
pub struct PoolParts<'a> {
    /// The Pool.
    pub pool: &'a Pool,
    /// The Engine it names.
    pub engine: &'a Engine,
    /// The Model it names.
    pub model: &'a Model,
}

impl<'a> PoolParts<'a> {
    /// Pool `pool`'s parts out of `objects` (the last declaration of a name wins, as in the
    /// manifests directory).
    pub fn find(objects: &'a [AnyObject], pool: &'a Pool) -> Result<PoolParts<'a>, Refusal> {
        let refuse = |kind: &'static str, name: &str| Refusal {
            object: ObjectRef::new(Kind::Pool, pool.name()),
            why: Unexportable::Missing {
                kind,
                name: name.to_string(),
            },
        };
        let engine = objects
            .iter()
            .rev()
            .find_map(|o| match o {
                AnyObject::Engine(e) if e.name() == pool.spec.engine => Some(e),
                _ => None,
            })
            .ok_or_else(|| refuse("Engine", &pool.spec.engine))?;
        let model = objects
            .iter()
            .rev()
            .find_map(|o| match o {
                AnyObject::Model(m) if m.name() == pool.spec.model => Some(m),
                _ => None,
            })
            .ok_or_else(|| refuse("Model", &pool.spec.model))?;
        Ok(PoolParts { pool, engine, model })
    }
}
