//! What an API key may do.

/// An API key's role. The command line takes it by the same names as it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// May read, watch and change.
    Admin,
    /// May only read and watch.
    Viewer,
}

impl Role {
    /// The role's name, as the command line takes and prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }
}
