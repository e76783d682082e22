//! What is checked before the session starts, so that a mistake on the
//! command line is one clear line rather than a failure later: the torrents
//! given, the data directory, the ports.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use bittorrent::magnet::Magnet;
use bittorrent::metainfo::{MetaInfo, MetaInfoError};
use bittorrent::store::RESUME_DIR;

/// A torrent named on the command line.
pub enum Source {
    File(MetaInfo),
    Magnet(Magnet),
}

/// Reads one command-line torrent: a magnet link or a .torrent file.
///
/// # Errors
/// One line naming the argument and what is wrong with it.
pub fn source(arg: &str) -> Result<Source, String> {
    if arg
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        return Magnet::parse(arg)
            .map(Source::Magnet)
            .map_err(|e| format!("{arg}: not a valid magnet link: {e}"));
    }
    let path = Path::new(arg);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{arg}: no such file (give a .torrent file or a magnet: link)"
            ))
        }
        Err(e) => return Err(format!("{arg}: cannot read it: {e}")),
        Ok(m) if m.is_dir() => {
            return Err(format!(
                "{arg}: is a directory; give a .torrent file (or a magnet: link)"
            ))
        }
        Ok(_) => {}
    }
    MetaInfo::load(path).map(Source::File).map_err(|e| match e {
        MetaInfoError::Io { source, .. } => format!("{arg}: cannot read it: {source}"),
        other => format!("{arg}: not a valid .torrent file: {other}"),
    })
}

/// Makes sure the data directory (and its `.bittorrent` folder, where the
/// resume records, the DHT state and the metainfo of magnets are saved)
/// exists and is writable.
///
/// # Errors
/// One line naming `-o` and why it cannot be used.
pub fn output(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(format!("-o {shown}: not a directory"));
    }
    std::fs::create_dir_all(dir.join(RESUME_DIR))
        .map_err(|e| format!("-o {shown}: cannot create the data directory there: {e}"))
}

/// Checks that the peer port (TCP) and the DHT port (UDP) are free, by
/// binding them for a moment.
///
/// # Errors
/// One line saying which port is taken and what to do.
pub fn ports(listen: SocketAddr, dht: Option<SocketAddr>) -> Result<(), String> {
    let port_error = |what: &str, addr: SocketAddr, e: std::io::Error, flag: &str| {
        if e.kind() == ErrorKind::AddrInUse {
            format!(
                "cannot listen on port {} ({what}): it is in use by another program; \
                 choose another with {flag} (0 picks a free one)",
                addr.port()
            )
        } else {
            format!("cannot listen on {addr} ({what}): {e}")
        }
    };
    // As the session binds it: [::] falls back to 0.0.0.0 without IPv6.
    let tcp = TcpListener::bind(listen).or_else(|e| {
        if listen.ip().is_unspecified() && listen.is_ipv6() && e.kind() != ErrorKind::AddrInUse {
            TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], listen.port())))
        } else {
            Err(e)
        }
    });
    tcp.map_err(|e| port_error("peers, TCP", listen, e, "-p PORT"))?;
    if let Some(addr) = dht {
        UdpSocket::bind(addr).map_err(|e| port_error("DHT, UDP", addr, e, "--dht-port PORT"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(arg: &str) -> String {
        match source(arg) {
            Ok(_) => panic!("{arg} accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_torrents_are_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.torrent");
        let missing = missing.to_str().unwrap();
        assert!(error(missing).ends_with("no such file (give a .torrent file or a magnet: link)"));
        let folder = dir.path().to_str().unwrap();
        assert!(
            error(folder).contains("is a directory"),
            "{}",
            error(folder)
        );
        let junk = dir.path().join("junk.torrent");
        std::fs::write(&junk, b"not bencode").unwrap();
        let junk = junk.to_str().unwrap();
        assert!(
            error(junk).contains("not a valid .torrent file"),
            "{}",
            error(junk)
        );
        assert!(error("magnet:?xt=nothing").contains("not a valid magnet link"));
        for message in [error(missing), error(folder), error(junk)] {
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn the_output_must_be_a_usable_directory() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        output(&new).unwrap();
        assert!(new.join(RESUME_DIR).is_dir());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(output(&file).unwrap_err().ends_with("not a directory"));
        let under_file = file.join("sub");
        let e = output(&under_file).unwrap_err();
        assert!(e.contains("cannot create the data directory"), "{e}");
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = ports(addr, None).unwrap_err();
        assert!(e.contains(&format!("port {}", addr.port())), "{e}");
        assert!(e.contains("in use") && e.contains("-p PORT"), "{e}");
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        let e = ports(free, Some(udp.local_addr().unwrap())).unwrap_err();
        assert!(e.contains("--dht-port"), "{e}");
        ports(free, Some(free)).unwrap();
    }
}
