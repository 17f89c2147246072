//! A Model's status from its state: `status.model`, the Ready/Progressing/Degraded
//! conditions with reasons like `Fetching`, `DigestMismatch`, `DownloadsDisabled`,
//! `HostNotAllowed`, and the events for a fetch that starts, completes or fails.
//! It only writes a Model's status and says which event to emit; it never fetches or reads files.

use llorch_manifests::Reason;
use llorch_manifests::status::{ConditionType, EventType, ModelPhase, ModelState, ObjectStatus};

use super::Problem;
use crate::conditions;

/// Sets a Model's `status.model` and its conditions from its state: Ready when Ready,
/// Progressing while fetched or verified, Degraded with the problem's reason when Failed.
pub fn set_conditions(status: &mut ObjectStatus, state: ModelState, problem: Option<&Problem>) {
    match state.phase {
        ModelPhase::Ready => {
            let digest = state.digest.as_deref().unwrap_or("digest not computed yet");
            let path = state.path.as_deref().unwrap_or_default();
            conditions::set_healthy(status, Reason::ModelReady, format!("model file {path} ({digest})"));
        }
        ModelPhase::Failed => {
            let (reason, message) = problem
                .map(|p| (p.reason, p.message.clone()))
                .unwrap_or((Reason::ModelUnavailable, "the model is not usable".into()));
            conditions::set_failed(status, reason, message);
        }
        phase => {
            let reason = match phase {
                ModelPhase::Verifying => Reason::Verifying,
                ModelPhase::Fetching => Reason::Fetching,
                _ => Reason::Pending,
            };
            let message = progress_text(&state);
            conditions::set(status, ConditionType::Ready, false, reason, message.clone());
            conditions::set(status, ConditionType::Progressing, true, reason, message.clone());
            conditions::set(status, ConditionType::Degraded, false, reason, message);
        }
    }
    status.model = Some(state);
}

/// Sets the status of a Model whose every Pool runs elsewhere: `status.model` in phase
/// `not-fetched`, and Ready, Progressing and Degraded all false with reason `NotFetchedHere`
/// and `why`. Not Ready (no file is here) and not failed (nothing is wrong).
pub fn set_not_fetched(status: &mut ObjectStatus, state: ModelState, why: &str) {
    for type_ in [
        ConditionType::Ready,
        ConditionType::Progressing,
        ConditionType::Degraded,
    ] {
        conditions::set(status, type_, false, Reason::NotFetchedHere, why);
    }
    status.model = Some(state);
}

/// The event for a Model moving from `before` to `now`: fetch started, completed, failed.
pub fn event(
    before: Option<&ModelState>,
    now: &ModelState,
    problem: Option<&Problem>,
) -> Option<(EventType, Reason, String)> {
    let was = before.map(|b| b.phase).unwrap_or_default();
    let url = now.source_url.as_deref().unwrap_or("the model");
    match now.phase {
        ModelPhase::Fetching if was != ModelPhase::Fetching => {
            Some((EventType::Normal, Reason::FetchStarted, format!("fetching {url}")))
        }
        ModelPhase::Ready if was != ModelPhase::Ready && now.source_url.is_some() => Some((
            EventType::Normal,
            Reason::FetchCompleted,
            format!(
                "fetched {url} ({}, {}) into {}",
                human_bytes(now.bytes_total.unwrap_or(now.bytes_done)),
                now.digest.as_deref().unwrap_or("no digest"),
                now.path.as_deref().unwrap_or_default()
            ),
        )),
        ModelPhase::Failed if was != ModelPhase::Failed => {
            let (reason, message) = problem
                .map(|p| (p.reason, p.message.clone()))
                .unwrap_or((Reason::ModelUnavailable, "the model is not usable".into()));
            Some((EventType::Warning, reason, message))
        }
        _ => None,
    }
}

/// "fetching URL: 12.0 MiB of 40.0 MiB (30%)" and the like.
pub(crate) fn progress_text(state: &ModelState) -> String {
    let what = match state.phase {
        ModelPhase::Fetching => format!("fetching {}", state.source_url.as_deref().unwrap_or("the model")),
        ModelPhase::Verifying => "verifying its digest".to_string(),
        ModelPhase::NotFetched => return "not fetched here: only Pools that run elsewhere use it".to_string(),
        _ => return "waiting to be fetched or verified".to_string(),
    };
    match state.bytes_total {
        Some(total) if total > 0 => format!(
            "{what}: {} of {} ({}%)",
            human_bytes(state.bytes_done),
            human_bytes(total),
            state.bytes_done.saturating_mul(100) / total
        ),
        _ => format!("{what}: {}", human_bytes(state.bytes_done)),
    }
}

pub use llorch_manifests::units::human_bytes;
