//! The core's error type: an OS error (with its errno) or a misuse of the loop, each with the
//! Node-style string code (`'EPERM'`, `'ERR_LOOP_CLOSED'`) that the binding puts on the JS error.

use std::fmt;
use std::io;

/// Why a loop operation failed.
#[derive(Debug)]
pub enum Error {
    /// A system call failed; the code is derived from its errno.
    Os(io::Error),
    /// The loop was closed; nothing can be created or started on it any more.
    LoopClosed,
    /// The handle id is stale: its slot was released (a harmless no-op for most callers).
    StaleHandle,
    /// Every handle slot of the loop is in use.
    TooManyHandles,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The Node-style string code of the error, as `error.code` shows it in JavaScript.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Os(err) => err.raw_os_error().map_or("EIO", errno_name),
            Error::LoopClosed => "ERR_LOOP_CLOSED",
            Error::StaleHandle => "ERR_HANDLE_CLOSED",
            Error::TooManyHandles => "ERR_TOO_MANY_HANDLES",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(err) => write!(f, "{}: {err}", self.code()),
            Error::LoopClosed => f.write_str("the loop is closed"),
            Error::StaleHandle => f.write_str("the handle is closed"),
            Error::TooManyHandles => f.write_str("the loop has no free handle slot"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Os(err)
    }
}

/// The symbolic name of an errno value, as Node.js spells it in `error.code`.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EPIPE => "EPIPE",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => "EIO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_carry_node_style_codes() {
        assert_eq!(Error::from(io::Error::from_raw_os_error(libc::EPERM)).code(), "EPERM");
        assert_eq!(Error::from(io::Error::from_raw_os_error(libc::EBADF)).code(), "EBADF");
        assert_eq!(Error::LoopClosed.code(), "ERR_LOOP_CLOSED");
        assert!(Error::LoopClosed.to_string().contains("closed"));
    }
}
