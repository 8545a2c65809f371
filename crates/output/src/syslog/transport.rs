//! The syslog connection: a UDP socket, or a kept TCP/TLS stream that is checked before each
//! batch and replaced when the receiver has closed it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use crowsnest_model::Event;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{octet_counted, truncate, Header};
use crate::{
    tls, ConfigError, Delivery, OutputConfig, Sink, SinkError, SyslogConfig, SyslogTransport,
};

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Connection {
    /// Whether a kept stream still looks open. Writing into a connection the receiver has
    /// closed would "succeed" once and lose the messages, so before each batch a plain TCP
    /// stream is peeked (end of stream or unexpected data mean closed), and a TLS stream has
    /// its pending records processed (TLS 1.3 session tickets arrive after the handshake and
    /// are not a close; a `close_notify` or end of stream is).
    fn is_open(&mut self) -> bool {
        match self {
            Connection::Udp(_) => true,
            Connection::Tcp(tcp) => {
                if tcp.set_nonblocking(true).is_err() {
                    return false;
                }
                let mut probe = [0u8; 1];
                let open =
                    matches!(tcp.peek(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock);
                open && tcp.set_nonblocking(false).is_ok()
            }
            Connection::Tls(tls) => {
                if tls.sock.set_nonblocking(true).is_err() {
                    return false;
                }
                let open = tls_is_open(tls);
                open && tls.sock.set_nonblocking(false).is_ok()
            }
        }
    }

    fn write_all(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Udp(socket) => socket.send(frame).map(|_| ()),
            Connection::Tcp(tcp) => tcp.write_all(frame),
            Connection::Tls(tls) => tls.write_all(frame),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Connection::Udp(_) => Ok(()),
            Connection::Tcp(tcp) => tcp.flush(),
            Connection::Tls(tls) => tls.flush(),
        }
    }
}

/// The syslog sink.
pub struct SyslogSink {
    address: String,
    transport: SyslogTransport,
    header: Header,
    max_datagram_bytes: usize,
    timeout: Duration,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    connection: Option<Connection>,
}

impl SyslogSink {
    /// Builds the sink, checking the address, facility and TLS settings. It connects on the
    /// first batch.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an address that is not `host:port`, an unknown facility, a bad TLS
    /// file or server name, or a datagram size below 480 bytes (RFC 5426's minimum).
    pub fn new(config: &OutputConfig, syslog: &SyslogConfig) -> Result<Self, ConfigError> {
        let name = &config.name;
        let host = split_address(&syslog.address).ok_or_else(|| {
            ConfigError::invalid(name, "address", "host:port", syslog.address.as_str())
        })?;
        if syslog.max_datagram_bytes < 480 {
            return Err(ConfigError::invalid(
                name,
                "max_datagram_bytes",
                "at least 480",
                syslog.max_datagram_bytes.to_string(),
            ));
        }
        let tls = match syslog.transport {
            SyslogTransport::Tls => {
                let server = syslog.tls.server_name.as_deref().unwrap_or(host);
                Some((
                    tls::client_config(name, &syslog.tls)?,
                    tls::server_name(name, server)?,
                ))
            }
            SyslogTransport::Udp | SyslogTransport::Tcp => None,
        };
        Ok(Self {
            address: syslog.address.clone(),
            transport: syslog.transport,
            header: Header::from_config(name, syslog)?,
            max_datagram_bytes: syslog.max_datagram_bytes,
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            tls,
            connection: None,
        })
    }

    fn connect(&self) -> Result<Connection, SinkError> {
        let addresses: Vec<SocketAddr> = self
            .address
            .to_socket_addrs()
            .map_err(|e| SinkError::retryable(format!("resolving {}: {e}", self.address)))?
            .collect();
        let mut last = format!("{} resolved to no address", self.address);
        for address in addresses {
            match self.connect_to(address) {
                Ok(connection) => return Ok(connection),
                Err(e) => last = format!("connecting to {address}: {e}"),
            }
        }
        Err(SinkError::retryable(last))
    }

    fn connect_to(&self, address: SocketAddr) -> std::io::Result<Connection> {
        if self.transport == SyslogTransport::Udp {
            let local: SocketAddr = if address.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(address)?;
            return Ok(Connection::Udp(socket));
        }
        let tcp = TcpStream::connect_timeout(&address, self.timeout)?;
        tcp.set_write_timeout(Some(self.timeout))?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        let Some((config, server)) = &self.tls else {
            return Ok(Connection::Tcp(tcp));
        };
        let session = ClientConnection::new(config.clone(), server.clone())
            .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
        let mut stream = StreamOwned::new(session, tcp);
        // Finish the handshake now so certificate errors surface at connect time.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        }
        Ok(Connection::Tls(Box::new(stream)))
    }

    fn write_batch(&mut self, connection: &mut Connection, batch: &[Event]) -> std::io::Result<()> {
        for event in batch {
            let message = self.header.encode(event);
            match connection {
                Connection::Udp(_) => {
                    let message = truncate(&message, self.max_datagram_bytes);
                    connection.write_all(message.as_bytes())?;
                }
                Connection::Tcp(_) | Connection::Tls(_) => {
                    connection.write_all(&octet_counted(&message))?;
                }
            }
        }
        connection.flush()
    }
}

impl Sink for SyslogSink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        if batch.is_empty() {
            return Ok(Delivery::default());
        }
        let kept = self
            .connection
            .take()
            .and_then(|mut kept| kept.is_open().then_some(kept));
        let mut connection = match kept {
            Some(kept) => kept,
            None => self.connect()?,
        };
        match self.write_batch(&mut connection, batch) {
            Ok(()) => {
                self.connection = Some(connection);
                Ok(Delivery::all(batch.len()))
            }
            // The connection is dropped; the next attempt opens a new one.
            Err(e) => Err(SinkError::retryable(format!(
                "writing to {}: {e}",
                self.address
            ))),
        }
    }
}

/// Processes what a (non-blocking) TLS stream has received; false when it is closed.
fn tls_is_open(tls: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => return false,
            Ok(_) => match tls.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() => return false,
                Ok(_) => {}
                Err(_) => return false,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
    }
    let mut probe = [0u8; 1];
    matches!(tls.conn.reader().read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// The host of `host:port` (`[v6]:port` too), if the port is a number.
fn split_address(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::split_address;

    #[test]
    fn addresses_need_a_host_and_numeric_port() {
        assert_eq!(split_address("127.0.0.1:514"), Some("127.0.0.1"));
        assert_eq!(split_address("[::1]:6514"), Some("::1"));
        assert_eq!(split_address("logs.example:6514"), Some("logs.example"));
        for bad in ["127.0.0.1", ":514", "host:port", "host:70000"] {
            assert_eq!(split_address(bad), None, "{bad}");
        }
    }
}
