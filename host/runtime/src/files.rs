//! File work inside directories opened once as [`cap_std::fs::Dir`]
//! handles: the compile cache here, and in the server the plugin
//! directory, the content-addressed plugin store and the evidence roots.
//!
//! Every path is resolved relative to its handle by cap-std, which refuses
//! `..` above the handle, absolute paths and symbolic links that lead out
//! of it, so no caller joins a path and checks it for `..` or links by
//! hand, and an escape is impossible by construction. [`open_root`] is the
//! one place that uses ambient authority, once per root.

use std::io::{self, Read as _, Write as _};
use std::path::Path;

use cap_std::fs::{Dir, File, Metadata, OpenOptions, OpenOptionsExt as _};

/// Opens the directory at `path`, creating it (and its parents) first if
/// it is missing.
pub fn open_root(path: &Path) -> io::Result<Dir> {
    std::fs::create_dir_all(path)?;
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
}

/// True when `e` is cap-std's refusal of a path that leads out of its
/// directory (through `..`, an absolute path or a symbolic link).
pub fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        && e.to_string()
            .contains("a path led outside of the filesystem")
}

/// Why [`read_bounded`] returned no bytes.
#[derive(Debug)]
pub enum ReadError {
    /// The file is larger than the limit; nothing of it was read.
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// It is not a regular file (a directory, a FIFO, a device).
    NotAFile,
    /// The file system failed, or the path leads out of the directory
    /// (see [`is_escape`]).
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads the regular file `path` of `dir`, refusing it from its size,
/// before reading a byte, when it is larger than `limit`. The size is
/// taken from the opened file, and at most `limit` bytes are read whatever
/// it claims, so a file that grows meanwhile cannot make the read
/// unbounded. It is opened non-blocking, so a FIFO put in its place cannot
/// stall the reader. Returns the opened file's metadata with the bytes.
pub fn read_bounded(
    dir: &Dir,
    path: impl AsRef<Path>,
    limit: u64,
) -> Result<(Metadata, Vec<u8>), ReadError> {
    let mut options = OpenOptions::new();
    options.read(true);
    options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    let file = dir.open_with(path, &options)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok((meta, bytes))
}

/// Writes `bytes` as `name` in `dir` durably: into a temporary file of the
/// same directory, synced, renamed over `name`, then the directory synced.
/// After a crash `name` is the old file or the new one, whole, never a
/// torn mix; the temporary file is removed when a step fails.
pub fn write_durable(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
    replace(dir, name, bytes, true)?;
    sync_dir(dir)
}

/// Writes `bytes` as `name` in `dir` through a temporary file and a rename,
/// without syncing: a reader never sees half a file, but after a crash
/// `name` may be missing, empty or torn. For what checks itself when read
/// (the compile cache's entries end with their sha256), where a sync per
/// write would only slow down loading a plugin.
pub fn write_replace(dir: &Dir, name: &str, bytes: &[u8]) -> io::Result<()> {
    replace(dir, name, bytes, false)
}

fn replace(dir: &Dir, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = format!(".{name}.{}.tmp", unique());
    let written = (|| {
        let mut f = create_new(dir, &tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        dir.rename(&tmp, dir, name)
    })();
    if let Err(e) = written {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Creates `name` in `dir` for writing; fails if it exists.
pub fn create_new(dir: &Dir, name: &str) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    dir.open_with(name, &options)
}

/// Makes the entries of `dir` durable (a rename into it, a removal).
pub fn sync_dir(dir: &Dir) -> io::Result<()> {
    // The handle itself may be opened with O_PATH, which cannot be synced;
    // "." opened for reading is the same directory.
    dir.open(".")?.sync_all()
}

/// A name part no other writer of this process or another uses at the
/// same moment.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_stay_inside() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let dir = open_root(&root).unwrap();
        std::fs::write(base.path().join("secret"), "s").unwrap();
        std::fs::write(root.join("small"), "12345").unwrap();
        std::os::unix::fs::symlink(base.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
        std::os::unix::fs::symlink("small", root.join("in")).unwrap();
        let sparse = std::fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(64 << 30).unwrap();

        assert_eq!(read_bounded(&dir, "small", 5).unwrap().1, b"12345");
        assert_eq!(read_bounded(&dir, "in", 5).unwrap().1, b"12345");
        assert!(matches!(
            read_bounded(&dir, "small", 4),
            Err(ReadError::TooLarge { size: 5 })
        ));
        assert!(matches!(
            read_bounded(&dir, "sparse", 1 << 20),
            Err(ReadError::TooLarge { size }) if size == 64 << 30
        ));
        for escaping in ["out", "up", "../secret", "/etc/hostname"] {
            match read_bounded(&dir, escaping, 1 << 20) {
                Err(ReadError::Io(e)) => assert!(is_escape(&e), "{escaping}: {e}"),
                other => panic!("{escaping}: {other:?}"),
            }
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_bounded(&dir, "fifo", 1 << 20),
            Err(ReadError::NotAFile)
        ));
    }

    #[test]
    fn durable_writes_replace_whole_files() {
        let base = tempfile::tempdir().unwrap();
        let dir = open_root(base.path()).unwrap();
        write_durable(&dir, "f", b"one").unwrap();
        write_durable(&dir, "f", b"two").unwrap();
        assert_eq!(std::fs::read(base.path().join("f")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"], "no temporary file is left behind");
    }
}
