//! File damage confined to `WORKDIR` (docs/drill-format.md, "Local target
//! faults"): the local `delete` and `corrupt` faults act only on regular files
//! and directories inside the run's work directory, never through a symlink or
//! a hard link to something outside it, and never on a FIFO, socket or device.
//!
//! Checking a path and then using it leaves a window in which a step running
//! in parallel can swap a directory for a symlink. So nothing here uses a
//! path twice: the work directory is opened once (`O_NOFOLLOW`), every
//! further name is resolved relative to an open directory handle — with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` where the
//! kernel has it, else one `openat(O_NOFOLLOW)` per component — and files are
//! deleted with `unlinkat` on the handle of their directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use rand::{Rng, SeedableRng};

/// The most bytes one `corrupt` fault may overwrite (validation refuses more).
pub const MAX_CORRUPT_BYTES: u64 = 1 << 20;

/// Why a path of the drill was not touched.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    /// The drill asked for something it does not own (outside WORKDIR,
    /// through a link, not a regular file or directory).
    #[error("{0}")]
    Refused(String),
    /// The file system said no (missing file, permissions).
    #[error("{0}")]
    Failed(String),
}

/// Why a `delete` or `corrupt` path, as written in a drill (before
/// expansion), is outside WORKDIR for every run; None when only the run can
/// tell (it names a variable other than a leading `${WORKDIR}`).
pub fn outside_as_written(written: &str) -> Option<&'static str> {
    if let Some(rest) = written.strip_prefix("${WORKDIR}") {
        if rest.contains('$') || !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        // Lexically, as the run resolves it: `..` cannot climb out.
        let mut depth = 0usize;
        for part in Path::new(rest).components() {
            match part {
                Component::Normal(_) => depth += 1,
                Component::ParentDir if depth == 0 => {
                    return Some("`..` climbs out of WORKDIR");
                }
                Component::ParentDir => depth -= 1,
                _ => {}
            }
        }
        return (depth == 0).then_some("it is WORKDIR itself, which the run removes at its end");
    }
    if written.contains('$') {
        None
    } else if written.starts_with('/') {
        Some("an absolute path without `${WORKDIR}` is never inside a run's fresh WORKDIR")
    } else {
        Some("a relative path resolves against the drill's directory, not WORKDIR")
    }
}

/// A path inside WORKDIR, as a name relative to it.
#[derive(Debug, Clone)]
pub struct Owned {
    workdir: PathBuf,
    relative: PathBuf,
}

/// Resolves a path written in a drill (already `${VAR}`-expanded; relative
/// paths against `base`) to a path strictly inside `workdir`, lexically: `..`
/// cannot climb out. Links are judged later, while walking.
pub fn resolve(written: &Path, base: &Path, workdir: &Path) -> Result<Owned, WorkdirError> {
    let joined = if written.is_absolute() {
        written.to_path_buf()
    } else {
        base.join(written)
    };
    let path = normalize(&joined);
    let workdir = normalize(workdir);
    match path.strip_prefix(&workdir) {
        Ok(relative) if !relative.as_os_str().is_empty() => Ok(Owned {
            workdir,
            relative: relative.to_path_buf(),
        }),
        _ => Err(WorkdirError::Refused(format!(
            "refusing to touch {}: the local target only deletes or corrupts paths inside WORKDIR ({}), the directory the drill owns",
            path.display(),
            workdir.display()
        ))),
    }
}

/// Removes `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Owned {
    /// The full path, for messages and the journal.
    pub fn path(&self) -> PathBuf {
        self.workdir.join(&self.relative)
    }

    /// Checks, without changing anything, that the path's directory is
    /// reached from WORKDIR without a link (for `plan` and `--dry-run`).
    pub fn check(&self) -> Result<(), WorkdirError> {
        self.open_parent().map(drop)
    }

    /// Deletes the file or directory tree. Entries inside a directory are
    /// removed, never followed: a symlink inside is unlinked, not its target.
    pub fn delete(&self) -> Result<(), WorkdirError> {
        let (parent, name) = self.open_parent()?;
        let stat = self.stat_kind(&parent, &name)?;
        if kind_of(&stat) != SFlag::S_IFDIR {
            return unlinkat(&parent, name.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|errno| self.failed(errno));
        }
        let mount = mount_id(&parent).map_err(|errno| self.failed(errno))?;
        let mut left = Vec::new();
        remove_tree(&parent, &name, mount, &self.path(), &mut left)
            .map_err(|errno| self.failed(errno))?;
        if left.is_empty() {
            return Ok(());
        }
        Err(WorkdirError::Refused(format!(
            "deleted {} except {}: another file system is mounted there; the local target never crosses a mount point",
            self.path().display(),
            list_paths(&left)
        )))
    }

    /// Overwrites `count` bytes at random offsets chosen by `seed` (each byte
    /// changes: at least one bit flips). Returns the offsets, sorted. The
    /// file must be a regular file with no other name (a hard link could
    /// lead outside WORKDIR); it is written through the handle that was
    /// checked, one byte at a time, so memory does not grow with the file.
    pub fn corrupt(&self, count: u64, seed: u64) -> Result<Vec<u64>, WorkdirError> {
        let (parent, name) = self.open_parent()?;
        self.stat_kind(&parent, &name)?;
        // O_PATH opens without reading or writing anything (no FIFO wait, no
        // device side effect); the file it names is judged by fstat, and only
        // then opened for writing through /proc/self/fd, which reopens that
        // very inode.
        let handle = openat(
            &parent,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| self.link_or_failed(errno))?;
        let stat = fstat(&handle).map_err(|errno| self.failed(errno))?;
        if kind_of(&stat) != SFlag::S_IFREG {
            return Err(self.refused("it is not a regular file"));
        }
        if stat.st_nlink > 1 {
            return Err(self.refused(&format!(
                "it has {} hard links: another name may lie outside WORKDIR",
                stat.st_nlink
            )));
        }
        let size = stat.st_size as u64;
        if size == 0 {
            return Err(WorkdirError::Failed(format!(
                "cannot corrupt {}: the file is empty: nothing to corrupt",
                self.path().display()
            )));
        }
        let writable = reopen_for_writing(&handle).map_err(|errno| self.failed(errno))?;
        let file = File::from(writable);
        let again = fstat(&file).map_err(|errno| self.failed(errno))?;
        if (again.st_dev, again.st_ino) != (stat.st_dev, stat.st_ino) {
            return Err(self.refused("it changed while being opened"));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut offsets = Vec::new();
        for _ in 0..count.min(size) {
            let offset = rng.random_range(0..size);
            let mask = rng.random_range(1..=255u8);
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, offset)
                .and_then(|()| file.write_all_at(&[byte[0] ^ mask], offset))
                .map_err(|error| {
                    WorkdirError::Failed(format!(
                        "cannot corrupt {}: {error}",
                        self.path().display()
                    ))
                })?;
            offsets.push(offset);
        }
        offsets.sort_unstable();
        Ok(offsets)
    }

    /// The directory holding the path, opened beneath WORKDIR without
    /// following any link, and the path's last name.
    fn open_parent(&self) -> Result<(OwnedFd, OsString), WorkdirError> {
        let root = open(
            &self.workdir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| {
            WorkdirError::Refused(format!(
                "cannot open WORKDIR {} as a directory ({errno}): it was removed or replaced by a link",
                self.workdir.display()
            ))
        })?;
        let name = self
            .relative
            .file_name()
            .map(OsStr::to_os_string)
            .ok_or_else(|| self.refused("it names no file"))?;
        let parent = match self.relative.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                open_beneath(&root, dir).map_err(|errno| self.link_or_failed(errno))?
            }
            _ => root,
        };
        Ok((parent, name))
    }

    /// The kind of `name` in `parent` (not followed): only a regular file or
    /// a directory is touched.
    fn stat_kind(&self, parent: &OwnedFd, name: &OsStr) -> Result<FileStat, WorkdirError> {
        let stat = fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|errno| self.failed(errno))?;
        match kind_of(&stat) {
            SFlag::S_IFREG | SFlag::S_IFDIR => Ok(stat),
            SFlag::S_IFLNK => Err(self.refused("it is a symbolic link")),
            SFlag::S_IFIFO => Err(self.refused("it is a FIFO")),
            SFlag::S_IFSOCK => Err(self.refused("it is a socket")),
            _ => Err(self.refused("it is a device")),
        }
    }

    fn refused(&self, why: &str) -> WorkdirError {
        WorkdirError::Refused(format!(
            "refusing to touch {}: {why}; the local target only deletes or corrupts regular files and directories inside WORKDIR",
            self.path().display()
        ))
    }

    /// A walk stopped by a link is a refusal; anything else is the file
    /// system's answer.
    fn link_or_failed(&self, errno: Errno) -> WorkdirError {
        match errno {
            Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR => self.refused(
                "a symbolic link, a mount point or something else than a directory is on its way",
            ),
            other => self.failed(other),
        }
    }

    fn failed(&self, errno: Errno) -> WorkdirError {
        WorkdirError::Failed(format!(
            "cannot touch {}: {}",
            self.path().display(),
            std::io::Error::from(errno)
        ))
    }
}

fn kind_of(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// Opens the directory `relative` beneath `root`: no symlink, no `..`, no
/// other file system on the way.
fn open_beneath(root: &OwnedFd, relative: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let how = OpenHow::new().flags(flags).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    match openat2(root, relative, how) {
        // Older kernels (< 5.6) and some seccomp profiles lack openat2.
        Err(Errno::ENOSYS | Errno::EPERM) => {}
        other => return other,
    }
    let root_mount = mount_id(root)?;
    let mut dir: Option<OwnedFd> = None;
    for part in relative.components() {
        let Component::Normal(name) = part else {
            return Err(Errno::EXDEV);
        };
        let next = openat(dir.as_ref().unwrap_or(root), name, flags, Mode::empty())?;
        if mount_id(&next)? != root_mount {
            return Err(Errno::EXDEV);
        }
        dir = Some(next);
    }
    match dir {
        Some(dir) => Ok(dir),
        None => root.try_clone().map_err(|_| Errno::EBADF),
    }
}

/// Opens for writing the very file an `O_PATH` handle names.
fn reopen_for_writing(handle: &OwnedFd) -> nix::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let magic = format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd());
    open(
        magic.as_str(),
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Removes a run's WORKDIR and everything in it, through directory handles,
/// never entering another mount (a volume a step bind-mounted there stays
/// mounted, and what it holds stays untouched). Returns the mount points it
/// left, by path; a symlink named `path` is unlinked, not followed.
pub fn remove_workdir(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::other(format!(
            "{} names no directory",
            path.display()
        )));
    };
    let parent_path = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let parent = open(
        parent_path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let stat = match fstatat(&parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        other => other?,
    };
    if kind_of(&stat) != SFlag::S_IFDIR {
        unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir)?;
        return Ok(Vec::new());
    }
    let mut left = Vec::new();
    remove_tree(&parent, name, mount_id(&parent)?, path, &mut left)?;
    Ok(left)
}

/// The event recording what [`remove_workdir`] left, if anything.
pub fn left_behind(
    workdir: &Path,
    removal: std::io::Result<Vec<PathBuf>>,
) -> Option<crate::event::EventKind> {
    match removal {
        Ok(left) if left.is_empty() => None,
        Ok(left) => Some(crate::event::EventKind::WorkdirLeft {
            paths: left.iter().map(|p| p.display().to_string()).collect(),
            reason: "another file system is mounted there (never crossed: unmount it, then run `firedrill clean`)".to_string(),
        }),
        Err(error) => Some(crate::event::EventKind::WorkdirLeft {
            paths: vec![workdir.display().to_string()],
            reason: error.to_string(),
        }),
    }
}

/// `a, b, c`, for messages.
pub fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes the directory `name` (at path `at`) in `parent` and everything in
/// it, through handles only. A directory on another mount than `mount`
/// (another file system, or a bind mount of the same one) is not entered:
/// it is added to `left`, and the directories holding it stay.
fn remove_tree(
    parent: &OwnedFd,
    name: &OsStr,
    mount: u64,
    at: &Path,
    left: &mut Vec<PathBuf>,
) -> nix::Result<()> {
    let fd = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    if mount_id(&fd)? != mount {
        left.push(at.to_path_buf());
        return Ok(());
    }
    let listing = fd.try_clone().map_err(|_| Errno::EBADF)?;
    let mut entries = Vec::new();
    for entry in Dir::from_fd(listing)?.iter() {
        let entry = entry?;
        let entry_name = entry.file_name().to_bytes();
        if entry_name != b"." && entry_name != b".." {
            entries.push(OsStr::from_bytes(entry_name).to_os_string());
        }
    }
    let before = left.len();
    for entry in entries {
        let stat = fstatat(
            &fd,
            entry.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind_of(&stat) == SFlag::S_IFDIR {
            match remove_tree(&fd, &entry, mount, &at.join(&entry), left) {
                // Swapped for a non-directory since the stat: unlink that.
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    unlinkat(&fd, entry.as_os_str(), UnlinkatFlags::NoRemoveDir)?
                }
                other => other?,
            }
        } else {
            match unlinkat(&fd, entry.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                // A file bind-mounted over this name.
                Err(Errno::EBUSY) => left.push(at.join(&entry)),
                other => other?,
            }
        }
    }
    if left.len() > before {
        // It still holds what was left.
        return Ok(());
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

/// The id of the mount `fd` is on: unlike `st_dev`, it tells a bind mount
/// from the file system it shows.
fn mount_id(fd: &OwnedFd) -> nix::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: `statx` writes only into `buf`, a plain struct it fully owns
    // for the call; the empty path with AT_EMPTY_PATH names `fd` itself.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    let done = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut buf,
        )
    };
    if done == 0 && buf.stx_mask & libc::STATX_MNT_ID != 0 {
        return Ok(buf.stx_mnt_id);
    }
    // Kernels before 5.8: the same id, from /proc.
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|_| Errno::ENOSYS)?;
    info.lines()
        .find_map(|line| line.strip_prefix("mnt_id:"))
        .and_then(|id| id.trim().parse().ok())
        .ok_or(Errno::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(workdir: &Path, written: &str) -> Result<Owned, WorkdirError> {
        resolve(Path::new(written), workdir, workdir)
    }

    #[test]
    fn paths_outside_workdir_are_refused_lexically() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().display().to_string();
        assert!(owned(dir.path(), &format!("{w}/data")).is_ok());
        assert!(owned(dir.path(), "data").is_ok());
        for bad in ["/etc/passwd", &format!("{w}/../x"), &w, "/", "../x"] {
            assert!(
                matches!(owned(dir.path(), bad), Err(WorkdirError::Refused(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn corruption_is_seeded_and_changes_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.path().join("b"), vec![0u8; 4096]).unwrap();
        let offsets_a = owned(dir.path(), "a").unwrap().corrupt(16, 7).unwrap();
        let offsets_b = owned(dir.path(), "b").unwrap().corrupt(16, 7).unwrap();
        assert_eq!(offsets_a, offsets_b);
        let bytes = std::fs::read(dir.path().join("a")).unwrap();
        assert!(bytes.iter().any(|b| *b != 0));
        assert_eq!(bytes, std::fs::read(dir.path().join("b")).unwrap());
    }

    #[test]
    fn links_fifos_and_hard_links_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let canary = outside.path().join("canary");
        std::fs::write(&canary, b"keep me").unwrap();
        std::os::unix::fs::symlink(&canary, dir.path().join("flink")).unwrap();
        std::fs::hard_link(&canary, dir.path().join("hlink")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dlink")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        for name in ["flink", "hlink", "dlink/canary", "fifo", "zero"] {
            let result = owned(dir.path(), name).unwrap().corrupt(8, 1);
            assert!(
                matches!(result, Err(WorkdirError::Refused(_))),
                "{name}: {result:?}"
            );
        }
        for name in ["flink", "dlink/canary", "fifo", "zero"] {
            let result = owned(dir.path(), name).unwrap().delete();
            assert!(
                matches!(result, Err(WorkdirError::Refused(_))),
                "{name}: {result:?}"
            );
        }
        assert_eq!(std::fs::read(&canary).unwrap(), b"keep me");
    }

    #[test]
    fn a_tree_is_deleted_without_following_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("canary"), b"x").unwrap();
        let tree = dir.path().join("tree/sub");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("out")).unwrap();
        owned(dir.path(), "tree").unwrap().delete().unwrap();
        assert!(!dir.path().join("tree").exists());
        assert!(outside.path().join("canary").exists());
    }
}
