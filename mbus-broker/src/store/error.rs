//! The store's errors: [`StoreError`], which the engine's storage traits define, and how a
//! failed system call is given the path it was about.

pub use crate::engine::storage::StoreError;

use std::io;
use std::path::Path;

/// Attaches the path a failed system call was about, so that an error names its file.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.to_owned(),
            source,
        })
    }
}
