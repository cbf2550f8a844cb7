//! The library's error type: every user-facing failure names the thing and what was expected.

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Bad user input: a flag, a schedule string, a spec.
    #[error("{0}")]
    Input(String),
    /// A file that is missing, truncated, or not what was expected.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// Training produced a non-finite loss; the last good checkpoint is kept.
    #[error("training stopped: {0}")]
    Diverged(String),
    /// A compute device could not be used.
    #[error("device: {0}")]
    Device(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    pub fn file(path: impl AsRef<std::path::Path>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Read a whole file, with an error that names it.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::file(path, "file not found")
        } else {
            Error::file(path, format!("cannot read: {e}"))
        }
    })
}

/// Write a file atomically: a temp file beside it, then rename, so a crash never
/// leaves a half-written file under the real name.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Error::io(
                format!(
                    "writing {}: the disk is full (free some space, then continue with --resume; the last complete file of this name is kept)",
                    path.display()
                ),
                e,
            );
        }
        Error::io(format!("writing {}", path.display()), e)
    })
}
