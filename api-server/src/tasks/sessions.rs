//! Session lifetimes (ORCH-3021): a session keeps its replica (KV-cache warmth) for at most
//! [`SESSION_TTL`] since its last turn and [`MAX_TURNS`] turns; then it starts afresh, placed
//! like a new session. Pure bookkeeping over instants handed in.

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

    /// Records a turn of `id` at `now`.
    pub fn turn(&mut self, id: &str, now: Instant) -> Turn {
        let fresh = Session { last: now, turns: 1 };
        match self.sessions.get_mut(id) {
            Some(s) if now.duration_since(s.last) < self.ttl && s.turns < self.max_turns => {
                s.last = now;
                s.turns += 1;
                Turn::Continues
            }
            Some(s) => {
                *s = fresh;
                Turn::Fresh
            }
            None => {
                self.sessions.insert(id.to_string(), fresh);
                Turn::Fresh
            }
        }
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
