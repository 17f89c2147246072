//! The API's side of the ModelManager: the catalog's entries, pulls (refused at once when the
//! download policy forbids them, or when only Pools that run elsewhere use the Model) and verification counts for `/metrics`.
//! It never fetches anything itself: a pull only marks the Model for the controller's next pass.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use llorch_manifests::Reason;
use llorch_manifests::api::CatalogEntry;
use llorch_manifests::status::ModelPhase;

use super::PullError;
use super::shared::{Shared, lock};

/// The API's side: the catalog's entries, pulls and verification counts. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ModelsHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ModelsHandle {
    /// Every catalog entry, by digest.
    pub fn entries(&self) -> Vec<CatalogEntry> {
        lock(&self.shared.index).entries()
    }

    /// Starts (or refreshes) Model `name`'s fetch on the controller's next pass; refused at
    /// once when the policy forbids the download.
    pub fn pull(&self, name: &str) -> Result<ModelPhase, PullError> {
        let (phase, key, problem) = match lock(&self.shared.models).get(name) {
            // Every Pool that uses it runs elsewhere: nothing here would read the file.
            Some(known) if known.state.phase == ModelPhase::NotFetched => {
                let why = known
                    .problem
                    .as_ref()
                    .map(|p| p.message.as_str())
                    .unwrap_or("not fetched here");
                return Err(PullError::Policy(format!("model `{name}` is {why}")));
            }
            Some(known) => (known.state.phase, known.key.clone(), known.problem.clone()),
            None => {
                return Err(PullError::NotFound(format!(
                    "model `{name}` not found; list them with `orchctl get models`"
                )));
            }
        };
        match lock(&self.shared.jobs).get(&key).cloned() {
            // A remote artifact not in the cache yet: the policy decides now, not later.
            Some(job) if job.stamp.is_none() && phase != ModelPhase::Ready => self
                .shared
                .precheck(&job.source)
                .map_err(|e| PullError::Policy(e.to_string()))?,
            // No job: refused at observation; a policy refusal stands until the config changes.
            None => {
                if let Some(p) = problem.filter(|p| {
                    matches!(
                        p.reason,
                        Reason::DownloadsDisabled | Reason::HostNotAllowed | Reason::NoModelCache
                    )
                }) {
                    return Err(PullError::Policy(p.message));
                }
            }
            Some(_) => {}
        }
        lock(&self.shared.pulls).insert(name.to_string());
        self.shared.wake.notify_one();
        Ok(phase)
    }

    /// `(result, count)` of digest verifications so far: `ok` and `mismatch`.
    pub fn verifications(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("ok", self.shared.verified_ok.load(Ordering::Relaxed)),
            ("mismatch", self.shared.verified_mismatch.load(Ordering::Relaxed)),
        ]
    }
}
