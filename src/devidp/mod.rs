//! Development identity provider (placeholder, being written).
