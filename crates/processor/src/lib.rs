//! processor (work in progress)
pub mod embedding;
