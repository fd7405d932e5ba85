//! Exhaustive transition tests.
