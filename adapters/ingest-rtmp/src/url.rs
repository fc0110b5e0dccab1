//! What a source URL asks for: its scheme, where it points, and the `listen` option.

use remotemedia_runtime_core::ingestion::IngestConfig;

/// The live protocols the adapter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Rtmp,
    Rtmps,
    Rtsp,
    Rtsps,
    Udp,
    Srt,
    Rtp,
}

impl Protocol {
    fn of(scheme: &str) -> Option<Self> {
        Some(match scheme {
            "rtmp" => Protocol::Rtmp,
            "rtmps" => Protocol::Rtmps,
            "rtsp" => Protocol::Rtsp,
            "rtsps" => Protocol::Rtsps,
            "udp" => Protocol::Udp,
            "srt" => Protocol::Srt,
            "rtp" => Protocol::Rtp,
            _ => return None,
        })
    }

    /// Whether the runtime can be this protocol's server (listen mode).
    fn can_listen(self) -> bool {
        !matches!(self, Protocol::Rtmps | Protocol::Rtsps)
    }

    /// UDP and RTP inputs always bind their address: they are listeners by nature.
    pub(crate) fn binds(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::Rtp)
    }
}

/// A parsed source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A live stream: the URL handed to FFmpeg (without our own options).
    Live {
        protocol: Protocol,
        url: String,
        host: String,
        listen: bool,
    },
    /// A local video file.
    File(std::path::PathBuf),
}

/// The longest URL accepted.
const MAX_URL_LEN: usize = 4096;

/// Parses `config.url`; errors say what is wrong with it.
pub(crate) fn parse(config: &IngestConfig) -> Result<Target, String> {
    let url = config.url.as_str();
    if url.trim().is_empty() {
        return Err("the input URL is empty".to_owned());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the URL contains spaces or control characters".to_owned());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(Target::File(url.into()));
    };
    if scheme == "file" {
        return Ok(Target::File(rest.into()));
    }
    let Some(protocol) = Protocol::of(&scheme.to_ascii_lowercase()) else {
        return Err(format!(
            "the {scheme}:// scheme is not one the ingest-rtmp adapter reads"
        ));
    };
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_host_port(host_port);
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "the port '{port}' is not a port number (1..=65535)"
            ));
        }
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    // Our own option, `listen=1`, is taken out; every other query parameter is the
    // protocol's (SRT's `mode=listener` counts as listen mode too).
    let mut listen = config.listen;
    let mut kept = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "1"));
        match key {
            "listen" => {
                listen = match value {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return Err(format!("the URL option listen={value} is not 0 or 1")),
                }
            }
            "mode" if protocol == Protocol::Srt && value == "listener" => {
                listen = true;
                kept.push(pair);
            }
            _ => kept.push(pair),
        }
    }
    if listen && !protocol.can_listen() {
        return Err(format!(
            "listen mode is not available for {scheme}:// (TLS needs a certificate the runtime does not have): listen with rtmp:// or rtsp://"
        ));
    }
    if host.is_empty() && !(listen || protocol.binds()) {
        return Err("the URL names no host".to_owned());
    }
    if port.is_none() && matches!(protocol, Protocol::Udp | Protocol::Srt | Protocol::Rtp) {
        return Err(format!("a {scheme}:// URL needs a port"));
    }
    let mut ffmpeg_url = format!("{scheme}://{authority}{path}");
    if !kept.is_empty() {
        ffmpeg_url.push('?');
        ffmpeg_url.push_str(&kept.join("&"));
    }
    Ok(Target::Live {
        protocol,
        url: ffmpeg_url,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        listen: listen || protocol.binds(),
    })
}

/// `host:port`, `[v6]:port`, `host` or `:port`.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(v6_end) = authority.find(']') {
        let (host, rest) = authority.split_at(v6_end + 1);
        return (host, rest.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// The URL with any password replaced, for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, String> {
        parse(&IngestConfig::from_url(url))
    }

    #[test]
    fn live_urls_keep_their_options_and_lose_ours() {
        assert_eq!(
            target("rtmp://127.0.0.1:1935/live/s?listen=1"),
            Ok(Target::Live {
                protocol: Protocol::Rtmp,
                url: "rtmp://127.0.0.1:1935/live/s".into(),
                host: "127.0.0.1".into(),
                listen: true,
            })
        );
        let Ok(Target::Live { url, listen, .. }) =
            target("srt://127.0.0.1:9000?mode=listener&latency=20000")
        else {
            panic!("srt parses");
        };
        assert_eq!(url, "srt://127.0.0.1:9000?mode=listener&latency=20000");
        assert!(listen);
        let Ok(Target::Live { listen, .. }) = target("udp://127.0.0.1:5000") else {
            panic!("udp parses");
        };
        assert!(listen, "UDP binds");
        assert!(matches!(target("clip.mp4"), Ok(Target::File(_))));
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        assert!(target("rtmp://h:99999/a")
            .unwrap_err()
            .contains("not a port"));
        assert!(target("udp://127.0.0.1")
            .unwrap_err()
            .contains("needs a port"));
        assert!(target("rtmps://h/a?listen=1")
            .unwrap_err()
            .contains("listen mode"));
        assert!(target("rtmp:///live").unwrap_err().contains("no host"));
        assert!(target("rtsp://h/a b").unwrap_err().contains("spaces"));
        assert!(target("rtmp://h/a?listen=maybe")
            .unwrap_err()
            .contains("listen=maybe"));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("rtsp://admin:secret@cam:554/s"),
            "rtsp://admin:***@cam:554/s"
        );
        assert_eq!(redacted("rtmp://h/live/key"), "rtmp://h/live/key");
    }
}
