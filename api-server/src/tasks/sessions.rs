//! Session lifetimes (ORCH-3021) and token budgets (ORCH-3099): a session keeps its replica
//! (KV-cache warmth) for at most a TTL since its last turn and a number of turns (defaults
//! [`SESSION_TTL`], [`MAX_TURNS`], per Pool `spec.sessions`); then it starts afresh, placed like
//! a new session, with a fresh budget. Pure bookkeeping over instants handed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A session idle this long expires.
pub const SESSION_TTL: Duration = Duration::from_secs(600);
/// A session ends after this many turns.
pub const MAX_TURNS: u32 = 8;

/// What a new turn of a session means for placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// The session continues: keep its replica.
    Continues,
    /// The session is new, or has just expired (idle or out of turns): place it afresh.
    Fresh,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    last: Instant,
    turns: u32,
    tokens: u64,
}

/// The sessions of one Pool.
#[derive(Debug)]
pub struct SessionBook {
    ttl: Duration,
    max_turns: u32,
    sessions: HashMap<String, Session>,
}

impl Default for SessionBook {
    fn default() -> Self {
        Self::new(SESSION_TTL, MAX_TURNS)
    }
}

impl SessionBook {
    /// A book with these limits.
    pub fn new(ttl: Duration, max_turns: u32) -> Self {
        Self {
            ttl,
            max_turns,
            sessions: HashMap::new(),
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) >= self.ttl || s.turns >= self.max_turns
    }

    /// Records a turn of `id` at `now` (when its task is dispatched).
    pub fn turn(&mut self, id: &str, now: Instant) -> Turn {
        let (ttl, max_turns) = (self.ttl, self.max_turns);
        let s = self.sessions.entry(id.to_string()).or_insert(Session {
            last: now,
            turns: 0,
            tokens: 0,
        });
        let expired = now.duration_since(s.last) >= ttl || s.turns >= max_turns;
        if s.turns > 0 && !expired {
            s.last = now;
            s.turns += 1;
            return Turn::Continues;
        }
        if s.turns > 0 {
            // A new life: the old one's tokens no longer count.
            s.tokens = 0;
        }
        s.last = now;
        s.turns = 1;
        Turn::Fresh
    }

    /// Reserves `tokens` of `id`'s budget for a task being admitted (its `max_tokens`); the
    /// unused part is given back by [`SessionBook::refund`] when the task ends.
    pub fn reserve(&mut self, id: &str, tokens: u64, now: Instant) {
        let fresh = Session {
            last: now,
            turns: 0,
            tokens: 0,
        };
        let expired = self.sessions.get(id).is_some_and(|s| self.expired(s, now));
        let s = self.sessions.entry(id.to_string()).or_insert(fresh);
        if expired {
            *s = fresh;
        }
        s.tokens = s.tokens.saturating_add(tokens);
    }

    /// Gives back `tokens` of a reservation that were not generated.
    pub fn refund(&mut self, id: &str, tokens: u64) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.tokens = s.tokens.saturating_sub(tokens);
        }
    }

    /// Tokens `id` has reserved or generated in its current life (0 when new or expired).
    pub fn used(&self, id: &str, now: Instant) -> u64 {
        match self.sessions.get(id) {
            Some(s) if !self.expired(s, now) => s.tokens,
            _ => 0,
        }
    }

    /// Applies new limits (a Pool edit); sessions keep their history.
    pub fn set_limits(&mut self, ttl: Duration, max_turns: u32) {
        self.ttl = ttl;
        self.max_turns = max_turns;
    }

    /// Forgets sessions idle past the TTL; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let ttl = self.ttl;
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.duration_since(s.last) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.sessions.remove(id);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_continues_until_its_turns_run_out_then_starts_afresh() {
        let mut book = SessionBook::new(Duration::from_secs(60), 3);
        let t = Instant::now();
        assert_eq!(book.turn("s", t), Turn::Fresh);
        assert_eq!(book.turn("s", t), Turn::Continues);
        assert_eq!(book.turn("s", t), Turn::Continues);
        assert_eq!(book.turn("s", t), Turn::Fresh, "the 4th turn exceeds 3");
        assert_eq!(book.turn("s", t), Turn::Continues);
    }

    #[test]
    fn reservations_count_until_refunded_and_a_new_life_starts_at_zero() {
        let mut book = SessionBook::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        book.reserve("s", 10, t);
        assert_eq!(book.used("s", t), 10, "reserved at admission, before dispatch");
        assert_eq!(book.turn("s", t), Turn::Fresh);
        assert_eq!(book.used("s", t), 10, "the first turn keeps its reservation");
        book.refund("s", 4);
        assert_eq!(book.used("s", t), 6);
        book.reserve("s", 5, t);
        assert_eq!(book.turn("s", t), Turn::Continues);
        assert_eq!(book.used("s", t), 0, "out of turns: the next task starts a new life");
        assert_eq!(book.used("other", t), 0);
        book.reserve("s", 3, t);
        assert_eq!(book.used("s", t), 3);
        assert_eq!(book.used("s", t + Duration::from_secs(61)), 0, "expired");
    }

    #[test]
    fn an_idle_session_expires_after_the_ttl() {
        let mut book = SessionBook::new(Duration::from_secs(60), 8);
        let t = Instant::now();
        book.turn("a", t);
        book.turn("b", t + Duration::from_secs(30));
        assert_eq!(book.turn("a", t + Duration::from_secs(61)), Turn::Fresh);
        assert_eq!(book.expire(t + Duration::from_secs(95)), vec!["b".to_string()]);
        assert_eq!(book.expire(t + Duration::from_secs(95)), Vec::<String>::new());
    }
}
