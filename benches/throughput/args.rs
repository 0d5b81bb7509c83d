//! Command-line options.

use std::time::Duration;

pub const HELP: &str = "\
Loopback and device throughput, latency and allocation bench for nestforge-edge.

USAGE
    cargo bench --bench throughput -- [OPTIONS] [FILTER...]
    throughput-<hash> [OPTIONS] [FILTER...]       (the binary `cargo bench --no-run` prints)

MODES
    (default)        The built-in matrix against an in-process gateway (its own thread,
                     127.0.0.1:0), each case also against a raw TCP echo as the reference,
                     with allocations counted on the server thread.
    --conns/--in-flight/--size/--frame/--max-frame without --url
                     One custom case, in-process (gateway and raw TCP echo).
    --url URL        One case against a running gateway (no reference, no allocation count).
    --compress       permessage-deflate: JSON telemetry of 128 B and 4 KiB at 1 x 1, 16 x 1
                     and 16 x 16, each case without then with the extension, twice, against
                     the in-process gateway (the bench built with --features deflate). With
                     --url or a custom case: that case's telemetry, offering the extension.

OPTIONS
    --url URL          Drive the gateway at ws://HOST:PORT/PATH (PORT defaults to 80,
                       PATH to /). Default: the in-process gateway.
    --frame TEXT       Send this text frame instead of binary echo frames. A NestForge
                       `message` request, e.g.
                       '{\"kind\":\"message\",\"pattern\":\"app.info\",\"payload\":null}',
                       expects NestForge's reply for that pattern (an error frame or any other
                       frame counts as an error); any other text is expected back verbatim.
                       In-process, requests go to the dispatch endpoint, other text to echo.
                       Default: echo of --size bytes.
    --conns N          Connections. Default 16 (custom case and --url).
    --in-flight N      Requests kept in flight per connection. Default 16 (custom case, --url).
    --size BYTES       Echo payload size (with --compress: JSON telemetry of that size); not
                       with --frame. Default 128.
    --max-frame BYTES  Split each message into frames of at most BYTES (a gateway with the
                       default configuration takes frames up to 16 KiB). Default: one frame.
    --secs S           Measured seconds per run (decimals allowed). Default 2 (matrix),
                       1 (--quick), 5 (--url, custom case).
    --warmup S         Warm-up seconds before each window. Default 0.5 (0.25 with --quick).
    --quick            Smaller matrix and shorter windows (about 30 s).
    --compress         See MODES: offer permessage-deflate, send compressible JSON telemetry,
                       inflate compressed replies. Not with --frame or --max-frame.
    --spin             Poll the sockets without blocking (the client takes a whole core).
                       Default: block in the OS poller (epoll/kqueue).
    -h, --help         This text.
    FILTER...          Built-in matrix only: run the cases whose name contains a FILTER.

OUTPUT
    A table per case: frames/s, MiB/s, p50 and p99 send-to-reply latency, errors (error
    frames, mismatched, unsolicited or missing replies, closed connections), min share (the
    least-served connection's replies over the mean, 1.0 = even); in-process also
    allocations per frame on the server thread and the raw echo's figures. Then one
    `case=... key=value` line per case. Progress and the first error of a case go to stderr.

EXIT STATUS
    0 all cases ran without errors; 1 a case had errors or could not connect;
    2 bad arguments.
";

/// A `ws://` URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Url {
    /// Host as written (brackets removed from IPv6 literals).
    pub host: String,
    pub port: u16,
    /// `host:port` as written, for the `Host` header.
    pub authority: String,
    pub path: String,
    /// The URL as given.
    pub text: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("--url {text:?}: {why}");
        let rest = if let Some(rest) = text.strip_prefix("ws://") {
            rest
        } else if text.starts_with("wss://") {
            return Err(bad("wss:// (TLS) is not supported, use ws://"));
        } else {
            return Err(bad("expected ws://HOST:PORT/PATH"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse()
                .map_err(|_| bad("the port is not a number 0-65535"))?,
        };
        Ok(Url {
            host: host.into(),
            port,
            authority: authority.into(),
            path: path.into(),
            text: text.into(),
        })
    }
}

/// The parsed command line.
#[derive(Debug, Default)]
pub struct Args {
    pub url: Option<Url>,
    pub frame: Option<String>,
    pub conns: Option<usize>,
    pub in_flight: Option<usize>,
    pub size: Option<usize>,
    pub max_frame: Option<usize>,
    pub secs: Option<Duration>,
    pub warmup: Option<Duration>,
    pub quick: bool,
    pub compress: bool,
    pub spin: bool,
    pub help: bool,
    pub filters: Vec<String>,
}

impl Args {
    /// A single custom case rather than the matrix.
    pub fn custom(&self) -> bool {
        self.url.is_some()
            || self.frame.is_some()
            || self.conns.is_some()
            || self.in_flight.is_some()
            || self.size.is_some()
            || self.max_frame.is_some()
    }

    /// Parses the arguments after the program name. Errors name the flag.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut out = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if !arg.starts_with('-') || arg == "-" {
                out.filters.push(arg);
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |flag: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "-h" | "--help" => out.help = true,
                "--quick" => out.quick = true,
                "--compress" => out.compress = true,
                "--spin" => out.spin = true,
                // `cargo bench` passes it to every bench binary.
                "--bench" => {}
                "--url" => out.url = Some(Url::parse(&value(&flag)?)?),
                "--frame" => out.frame = Some(value(&flag)?),
                "--conns" => out.conns = Some(count(&flag, &value(&flag)?, 1)?),
                "--in-flight" => out.in_flight = Some(count(&flag, &value(&flag)?, 1)?),
                "--size" => out.size = Some(count(&flag, &value(&flag)?, 0)?),
                "--max-frame" => out.max_frame = Some(count(&flag, &value(&flag)?, 1)?),
                "--secs" => out.secs = Some(seconds(&flag, &value(&flag)?, false)?),
                "--warmup" => out.warmup = Some(seconds(&flag, &value(&flag)?, true)?),
                _ => return Err(format!("unknown option {flag}")),
            }
            if inline.is_some()
                && matches!(
                    flag.as_str(),
                    "--quick" | "--compress" | "--spin" | "--help"
                )
            {
                return Err(format!("{flag} takes no value"));
            }
        }
        if out.frame.is_some() && out.size.is_some() {
            return Err("--size sets the echo payload; it does not apply with --frame".into());
        }
        if out.custom() && !out.filters.is_empty() {
            return Err(format!(
                "unexpected argument {:?}: case filters apply to the built-in matrix only",
                out.filters[0]
            ));
        }
        if out.compress && (out.frame.is_some() || out.max_frame.is_some()) {
            return Err(
                "--compress sends JSON telemetry in one frame per message: not with \
                        --frame or --max-frame"
                    .into(),
            );
        }
        if out.custom() && out.quick {
            return Err(
                "--quick selects the built-in matrix; it does not apply to one case".into(),
            );
        }
        Ok(out)
    }
}

fn count(flag: &str, value: &str, min: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= min && n <= 1 << 30 => Ok(n),
        _ => Err(format!(
            "{flag} {value:?}: expected a whole number from {min} to {}",
            1 << 30
        )),
    }
}

fn seconds(flag: &str, value: &str, zero: bool) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && (s > 0.0 || zero && s == 0.0) && s <= 3600.0 => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "{flag} {value:?}: expected seconds, {}3600",
            if zero { "0 to " } else { "more than 0 up to " }
        )),
    }
}
