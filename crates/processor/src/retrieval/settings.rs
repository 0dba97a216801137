//! `RETRIEVAL_*`: how wide a question looks and how many sources it keeps.

/// How wide a question looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Only the channel the question was asked in (default).
    Channel,
    /// The channels of its guild that everyone who can read the asking channel can read
    /// (the bot stamps them on the query from Discord's permissions).
    Guild,
}

/// `RetrievalSettings`' defaults, defined once (the flags' defaults and `Default` use them).
pub mod defaults {
    use super::Scope;

    pub const SCOPE: Scope = Scope::Channel;
    pub const CANDIDATES: usize = 10;
    pub const MIN_SIMILARITY: f32 = 0.5;
    pub const MAX_SOURCES: usize = 5;
    pub const NEIGHBORS: usize = 3;
    pub const NEIGHBOR_WINDOW_SECS: u64 = 600;
}

/// Retrieval knobs (defaults from the seed bot).
#[derive(Debug, Clone, clap::Args)]
pub struct RetrievalSettings {
    /// channel: only the asking channel; guild: the channels of the guild that everyone who
    /// can read the asking channel can read. DMs only ever see their DM.
    #[arg(
        long = "retrieval-scope",
        env = "RETRIEVAL_SCOPE",
        value_enum,
        default_value_t = defaults::SCOPE
    )]
    pub scope: Scope,
    /// Nearest messages fetched per question.
    #[arg(
        long = "retrieval-candidates",
        env = "RETRIEVAL_CANDIDATES",
        default_value_t = defaults::CANDIDATES
    )]
    pub candidates: usize,
    /// Cosine similarity below which a hit is ignored. 0.5, not the seed's 0.3: measured with
    /// `processor eval`, all-MiniLM-L6-v2 puts unrelated chat at 0.3–0.5 (the seed's floor
    /// answered 19 of 30 off-topic questions with noise; 0.5 says "not found" for 28–29 of 30,
    /// for none of the 84 answerable questions and none of the 28 paraphrased ones, whose first
    /// loss comes at 0.55).
    #[arg(
        long = "retrieval-min-similarity",
        env = "RETRIEVAL_MIN_SIMILARITY",
        default_value_t = defaults::MIN_SIMILARITY
    )]
    pub min_similarity: f32,
    /// Hits kept as sources.
    #[arg(
        long = "retrieval-max-sources",
        env = "RETRIEVAL_MAX_SOURCES",
        default_value_t = defaults::MAX_SOURCES
    )]
    pub max_sources: usize,
    /// Messages before and after a hit added as its context.
    #[arg(
        long = "retrieval-neighbors",
        env = "RETRIEVAL_NEIGHBORS",
        default_value_t = defaults::NEIGHBORS
    )]
    pub neighbors: usize,
    /// Only neighbours within this many seconds of the hit.
    #[arg(
        long = "retrieval-neighbor-window-secs",
        env = "RETRIEVAL_NEIGHBOR_WINDOW_SECS",
        default_value_t = defaults::NEIGHBOR_WINDOW_SECS
    )]
    pub neighbor_window_secs: u64,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            scope: defaults::SCOPE,
            candidates: defaults::CANDIDATES,
            min_similarity: defaults::MIN_SIMILARITY,
            max_sources: defaults::MAX_SOURCES,
            neighbors: defaults::NEIGHBORS,
            neighbor_window_secs: defaults::NEIGHBOR_WINDOW_SECS,
        }
    }
}
