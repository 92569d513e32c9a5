//! Token verification (placeholder, being written).
