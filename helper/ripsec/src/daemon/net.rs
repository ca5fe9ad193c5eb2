//! IKE UDP sockets: ports 500 and 4500 on the wildcard address of each
//! family, receiving with the packet's local address (IP_PKTINFO /
//! IPV6_RECVPKTINFO) and sending from the address the engine asks for.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// One bound UDP socket.
pub struct UdpSock {
    fd: OwnedFd,
    pub port: u16,
    pub v6: bool,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt(fd: RawFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: `val` outlives the call; the length matches.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

impl UdpSock {
    /// Binds the wildcard address of one family to `port`.
    pub fn bind(v6: bool, port: u16) -> io::Result<Self> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain socket(2).
        let raw = cvt(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if v6 {
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
            let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = port.to_be();
            // SAFETY: `sa` is a valid sockaddr_in6 of the given length.
            cvt(unsafe {
                libc::bind(raw, (&sa as *const libc::sockaddr_in6).cast(), mem::size_of_val(&sa) as libc::socklen_t)
            })?;
        } else {
            setopt(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            // SAFETY: zeroed sockaddr_in is valid; fields set below.
            let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = port.to_be();
            // SAFETY: `sa` is a valid sockaddr_in of the given length.
            cvt(unsafe {
                libc::bind(raw, (&sa as *const libc::sockaddr_in).cast(), mem::size_of_val(&sa) as libc::socklen_t)
            })?;
        }
        Ok(UdpSock { fd, port, v6 })
    }

    /// Receives one datagram: (bytes, local address, remote address), or
    /// None when nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr, SocketAddr)>> {
        // SAFETY: zeroed storage and headers are valid initial values.
        let mut from: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut cbuf = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = mem::size_of_val(&from) as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&cbuf) as _;
        // SAFETY: every pointer in `msg` is valid for the call.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
        }
        let remote = sockaddr_to(&from).ok_or_else(|| io::Error::other("unknown address family"))?;
        let mut local_ip: Option<IpAddr> = None;
        // SAFETY: walking the control messages the kernel filled in.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_PKTINFO {
                    let pi: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    local_ip = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
                } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                    let pi: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    local_ip = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let local_ip = local_ip.ok_or_else(|| io::Error::other("no packet info"))?;
        Ok(Some((n as usize, SocketAddr::new(local_ip, self.port), remote)))
    }

    /// Sends `parts` (concatenated) to `remote` from `local`'s address.
    pub fn send(&self, local: IpAddr, remote: SocketAddr, parts: &[&[u8]]) -> io::Result<()> {
        let mut iov: Vec<libc::iovec> =
            parts.iter().map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() }).collect();
        let mut cbuf = [0u64; 8];
        // SAFETY: zeroed msghdr; fields set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        let (sa4, sa6);
        match remote {
            SocketAddr::V4(r) => {
                sa4 = sockaddr4(r);
                msg.msg_name = (&sa4 as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
                msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(r) => {
                sa6 = sockaddr6(r);
                msg.msg_name = (&sa6 as *const libc::sockaddr_in6 as *mut libc::sockaddr_in6).cast();
                msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: computing control message sizes and filling the one cmsg
        // inside `cbuf`, which is large enough for either pktinfo.
        unsafe {
            match local {
                IpAddr::V4(a) => {
                    let len = libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) as usize;
                    msg.msg_controllen = len as _;
                    let c = libc::CMSG_FIRSTHDR(&msg);
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as u32) as _;
                    let mut pi: libc::in_pktinfo = mem::zeroed();
                    pi.ipi_spec_dst.s_addr = u32::from(a).to_be();
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), pi);
                }
                IpAddr::V6(a) => {
                    let len = libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) as usize;
                    msg.msg_controllen = len as _;
                    let c = libc::CMSG_FIRSTHDR(&msg);
                    (*c).cmsg_level = libc::IPPROTO_IPV6;
                    (*c).cmsg_type = libc::IPV6_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as u32) as _;
                    let mut pi: libc::in6_pktinfo = mem::zeroed();
                    pi.ipi6_addr.s6_addr = a.octets();
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), pi);
                }
            }
        }
        // SAFETY: every pointer in `msg` is valid for the call.
        cvt(unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) as libc::c_int }).map(|_| ())
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn sockaddr4(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: zeroed sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    sa
}

fn sockaddr6(a: SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: zeroed sockaddr_in6 is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = a.port().to_be();
    sa.sin6_addr.s6_addr = a.ip().octets();
    sa.sin6_scope_id = a.scope_id();
    sa
}

fn sockaddr_to(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                0,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// poll(2) over `fds` for readability; returns the readable ones' indexes.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<usize>> {
    let mut p: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `p` is a valid array of pollfd of the given length.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(Vec::new()) } else { Err(e) };
    }
    Ok(p.iter().enumerate().filter(|(_, x)| x.revents != 0).map(|(i, _)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_roundtrip_with_pktinfo() {
        // Port 0: any free port; the struct keeps the requested one, so read it back.
        let a = UdpSock::bind(false, 0).unwrap();
        let b = UdpSock::bind(false, 0).unwrap();
        let port_of = |s: &UdpSock| {
            // SAFETY: zeroed sockaddr_in; getsockname fills it.
            let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
            let mut len = mem::size_of_val(&sa) as libc::socklen_t;
            // SAFETY: valid pointers.
            unsafe { libc::getsockname(s.raw_fd(), (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) };
            u16::from_be(sa.sin_port)
        };
        let pb = port_of(&b);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        a.send(lo, SocketAddr::new(lo, pb), &[&[0, 0, 0, 0], b"hello"]).unwrap();
        let mut buf = [0u8; 64];
        let mut got = None;
        for _ in 0..100 {
            if let Some(r) = b.recv(&mut buf).unwrap() {
                got = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (n, local, remote) = got.expect("datagram");
        assert_eq!(&buf[..n], b"\0\0\0\0hello");
        assert_eq!(local.ip(), lo);
        assert_eq!(remote, SocketAddr::new(lo, port_of(&a)));
    }
}
