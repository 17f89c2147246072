//! In-memory fake runtime for unit tests. (To be implemented.)
