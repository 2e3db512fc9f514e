//! The system calls the loop makes itself, each behind a safe function. (Registration with the
//! poller goes through `event_loop::poller`.)

use std::io;
use std::os::fd::RawFd;

/// Fails with `EPERM` for descriptors that can never be polled (regular files and directories:
/// epoll refuses them) and with `EBADF` for descriptors that are not open.
pub fn check_pollable(fd: RawFd) -> io::Result<()> {
    // SAFETY: `stat` is plain old data, fully written by a successful fstat; zeroed is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, which outlives the call; a bad fd yields EBADF.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR => Err(io::Error::from_raw_os_error(libc::EPERM)),
        _ => Ok(()),
    }
}

/// Asks the kernel, without blocking, which of `fds` are ready now (`revents` is filled in).
/// One syscall for any number of descriptors: the loop uses it to re-check edge-triggered polls
/// before it reports them, which makes delivery level-triggered as JavaScript sees it.
pub fn poll_now(fds: &mut [libc::pollfd]) -> io::Result<()> {
    if fds.is_empty() {
        return Ok(());
    }
    loop {
        // SAFETY: the pointer and length describe `fds`, a live, exclusively borrowed slice.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn regular_files_are_not_pollable() {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let err = check_pollable(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn sockets_are_pollable_and_closed_fds_are_not() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        check_pollable(a.as_raw_fd()).unwrap();
        assert_eq!(
            check_pollable(-1).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn poll_now_reports_readiness() {
        use std::io::Write;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        poll_now(&mut fds).unwrap();
        assert_eq!(fds[0].revents & libc::POLLIN, 0);
        b.write_all(b"x").unwrap();
        poll_now(&mut fds).unwrap();
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
    }
}
