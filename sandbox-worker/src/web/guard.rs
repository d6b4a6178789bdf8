//! The egress guard: which URLs the worker may fetch for the model, checked where the request
//! leaves, on every request and every redirect.
//!
//! Decisions:
//! - Resolve once, check every address, connect only to what was checked: the guard is the
//!   client's DNS resolver ([`GuardedResolver`]), so the addresses reqwest connects to are the
//!   ones that passed. A name that answers a public address to the check and a private one to
//!   the connect (DNS rebinding) has no second lookup to exploit.
//! - Literal IP hosts never reach a resolver, so [`EgressPolicy::check_url`] checks them, for
//!   the first request and, through the redirect policy, for every hop (at most
//!   [`MAX_REDIRECTS`]).
//! - Refused: loopback, private (RFC 1918, IPv6 unique-local), link-local (which holds the cloud
//!   metadata address 169.254.169.254), CGNAT (100.64/10), unspecified, multicast, broadcast,
//!   documentation and benchmarking ranges, and IPv4 hidden in IPv6 (mapped, NAT64) by what it
//!   hides. `fd00:ec2::254` (EC2's IPv6 metadata) is unique-local. `allow_private` lifts this
//!   for a deliberately internal deployment; `allow_loopback` lifts it for loopback alone, which
//!   is what the tests' fake servers need (and the metadata address stays refused).
//! - Domain lists: a host is denied when it or a parent domain is in `denyDomains`; with an
//!   `allowDomains` list, it must be in it (or under an entry). Deny wins.
//! - The client ignores `HTTP(S)_PROXY` from the environment: a proxy would resolve names
//!   itself, past the guard.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// The most redirects one fetch follows, whatever the config says.
pub const MAX_REDIRECTS: usize = 5;

/// Address ranges no fetch may reach unless `allow_private` says so.
static BLOCKED: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "2001:db8::/32",
    ]
    .iter()
    .filter_map(|cidr| cidr.parse().ok())
    .collect()
});

/// Why a request was refused; the text goes back to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only http and https URLs can be fetched, not {0:?}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is in tools.web.denyDomains")]
    Denied(String),
    #[error("{0} is not in tools.web.allowDomains")]
    NotAllowed(String),
    #[error("{host} is a private, loopback, link-local or reserved address ({addr}); fetching it is refused")]
    PrivateAddress { host: String, addr: IpAddr },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("port {0} is not in tools.web.egressPorts; connecting to it is refused")]
    Port(u16),
}

/// What the worker may reach for the model (`tools.web`).
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// When not empty, only these domains (and their subdomains).
    pub allow_domains: Vec<String>,
    /// Never these domains (and their subdomains); wins over `allow_domains`.
    pub deny_domains: Vec<String>,
    /// Lets private and loopback addresses through (a deliberately internal deployment).
    pub allow_private: bool,
    /// Lets loopback (127/8, ::1) through and nothing else: the tests' fake servers.
    pub allow_loopback: bool,
    /// Redirects followed at most (0: the default, [`MAX_REDIRECTS`]).
    pub max_redirects: usize,
    /// The ports the sandbox's egress proxy connects to (none when empty).
    pub egress_ports: Vec<u16>,
}

/// True when `host` is `domain` or under it.
fn within(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches("*.").trim_end_matches('.');
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The IPv4 address an IPv6 one stands for (mapped, or NAT64 `64:ff9b::/96`), if any.
fn embedded_v4(addr: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = addr.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = addr.segments();
    (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]).then(|| {
        let [.., a, b, c, d] = addr.octets();
        std::net::Ipv4Addr::new(a, b, c, d)
    })
}

impl EgressPolicy {
    /// `tools.web`'s lists and private-network switch; `allow_loopback` is the tests'
    /// exception (a worker setting, never config).
    pub fn from_config(web: &infra::config::WebToolsConfig, allow_loopback: bool) -> Self {
        EgressPolicy {
            allow_domains: web.allow_domains.clone(),
            deny_domains: web.deny_domains.clone(),
            allow_private: web.dangerously_allow_private_network,
            allow_loopback,
            max_redirects: web.fetch.max_redirects,
            egress_ports: web.egress_ports.clone(),
        }
    }

    /// Whether the egress proxy may connect to `port` at `addr`: a listed port, or any port
    /// on loopback under the tests' exception (their fake servers listen on random ports).
    pub fn check_port(&self, port: u16, addr: IpAddr) -> Result<(), Refusal> {
        let tests_loopback = self.allow_loopback && addr.is_loopback();
        match tests_loopback || self.egress_ports.contains(&port) {
            true => Ok(()),
            false => Err(Refusal::Port(port)),
        }
    }

    /// Checks a host name against the domain lists.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self
            .deny_domains
            .iter()
            .any(|d| within(&host, &d.to_ascii_lowercase()))
        {
            return Err(Refusal::Denied(host));
        }
        if !self.allow_domains.is_empty()
            && !self
                .allow_domains
                .iter()
                .any(|d| within(&host, &d.to_ascii_lowercase()))
        {
            return Err(Refusal::NotAllowed(host));
        }
        Ok(())
    }

    /// Checks one address `host` resolved to (or is).
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        let seen = match addr {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if self.allow_loopback && seen.is_loopback() {
            return Ok(());
        }
        if BLOCKED.iter().any(|net| net.contains(&seen)) || seen == IpAddr::from([255; 4]) {
            return Err(Refusal::PrivateAddress {
                host: host.to_string(),
                addr,
            });
        }
        Ok(())
    }

    /// Checks a URL before it is requested: scheme, host lists, and a literal address.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(url::Host::Domain(name)) => self.check_host(name),
            Some(url::Host::Ipv4(v4)) => {
                let host = v4.to_string();
                self.check_host(&host)?;
                self.check_addr(&host, IpAddr::V4(v4))
            }
            Some(url::Host::Ipv6(v6)) => {
                let host = v6.to_string();
                self.check_host(&host)?;
                self.check_addr(&host, IpAddr::V6(v6))
            }
        }
    }
}

/// A name lookup: the system's resolver, or a test's.
type Lookup = Arc<
    dyn Fn(
            String,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>,
        > + Send
        + Sync,
>;

fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

/// The client's resolver: every name checked against the lists, resolved once, and only the
/// addresses that pass handed to the connector.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            policy.check_host(&host)?;
            let found = lookup(host.clone()).await?;
            if found.is_empty() {
                return Err(Refusal::NoAddress(host).into());
            }
            // Every address must pass: a name with one public and one private answer could
            // otherwise be steered to the private one by the connector's fallback.
            for addr in &found {
                policy.check_addr(&host, addr.ip())?;
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client whose every request and redirect goes through `policy`, sending
/// `user_agent`.
pub fn client(
    policy: EgressPolicy,
    timeout: Duration,
    user_agent: &str,
) -> reqwest::Result<reqwest::Client> {
    client_with_lookup(policy, timeout, user_agent, system_lookup())
}

fn client_with_lookup(
    policy: EgressPolicy,
    timeout: Duration,
    user_agent: &str,
    lookup: Lookup,
) -> reqwest::Result<reqwest::Client> {
    let policy = Arc::new(policy);
    let hops = policy.clone();
    let most = match policy.max_redirects {
        0 => MAX_REDIRECTS,
        n => n.min(MAX_REDIRECTS),
    };
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= most {
            return attempt.error(format!("more than {most} redirects"));
        }
        match hops.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refusal) => attempt.error(refusal),
        }
    });
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy, lookup }))
        .redirect(redirects)
        .timeout(timeout)
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// Fetches `url` through `client` after checking it: the first request's literal address and
/// lists here, the names in the resolver, every redirect in the redirect policy.
pub async fn get(
    client: &reqwest::Client,
    policy: &EgressPolicy,
    url: &str,
) -> Result<reqwest::Response, String> {
    let url = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    policy.check_url(&url).map_err(|e| e.to_string())?;
    client.get(url).send().await.map_err(|e| {
        // The refusal is the innermost cause; say it, not reqwest's wrapping.
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        cause.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> EgressPolicy {
        EgressPolicy::default()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        let policy = open();
        for refused in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
        ] {
            let url = Url::parse(refused).unwrap();
            assert!(
                matches!(policy.check_url(&url), Err(Refusal::PrivateAddress { .. })),
                "{refused} was let through"
            );
        }
        for allowed in [
            "https://93.184.215.14/",
            "https://[2606:4700::1111]/",
            "https://example.com/",
        ] {
            assert_eq!(
                policy.check_url(&Url::parse(allowed).unwrap()),
                Ok(()),
                "{allowed}"
            );
        }
        let lab = EgressPolicy {
            allow_private: true,
            ..open()
        };
        assert_eq!(
            lab.check_url(&Url::parse("http://127.0.0.1/").unwrap()),
            Ok(())
        );
        let tests = EgressPolicy {
            allow_loopback: true,
            ..open()
        };
        assert_eq!(
            tests.check_url(&Url::parse("http://127.0.0.1:8080/").unwrap()),
            Ok(())
        );
        let metadata = Url::parse("http://169.254.169.254/").unwrap();
        assert!(tests.check_url(&metadata).is_err(), "loopback only");
    }

    #[test]
    fn deny_wins_and_an_allow_list_admits_only_its_domains_and_their_subdomains() {
        let policy = EgressPolicy {
            allow_domains: vec!["example.com".into(), "*.docs.rs".into()],
            deny_domains: vec!["evil.example.com".into()],
            ..open()
        };
        assert_eq!(policy.check_host("example.com"), Ok(()));
        assert_eq!(policy.check_host("WWW.Example.com."), Ok(()));
        assert_eq!(policy.check_host("serde.docs.rs"), Ok(()));
        assert!(matches!(
            policy.check_host("a.evil.example.com"),
            Err(Refusal::Denied(_))
        ));
        assert!(matches!(
            policy.check_host("notexample.com"),
            Err(Refusal::NotAllowed(_))
        ));
        assert!(matches!(
            policy.check_host("example.com.attacker.net"),
            Err(Refusal::NotAllowed(_))
        ));
        let scheme = policy.check_url(&Url::parse("file:///etc/passwd").unwrap());
        assert!(matches!(scheme, Err(Refusal::Scheme(_))));
    }

    #[tokio::test]
    async fn a_name_whose_answer_flips_to_loopback_is_connected_where_it_was_checked() {
        // Arrange: a loopback listener that counts connections, and a name server that answers
        // a public address first and the listener's address after (DNS rebinding).
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reached = Arc::new(AtomicUsize::new(0));
        let counted = reached.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counted.fetch_add(1, SeqCst);
            }
        });
        let lookups = Arc::new(AtomicUsize::new(0));
        let answered = lookups.clone();
        let lookup: Lookup = Arc::new(move |_host: String| {
            let first = answered.fetch_add(1, SeqCst) == 0;
            Box::pin(async move {
                let ip: IpAddr = if first {
                    "93.184.215.14".parse().unwrap()
                } else {
                    "127.0.0.1".parse().unwrap()
                };
                Ok(vec![SocketAddr::new(ip, 0)])
            })
        });
        let policy = open();
        let client =
            client_with_lookup(policy.clone(), Duration::from_secs(2), "test", lookup).unwrap();
        let url = format!("http://rebind.test:{port}/");

        // Act: the first request is checked against the public answer; the second gets the
        // flipped one.
        let first = get(&client, &policy, &url).await;
        let second = get(&client, &policy, &url).await;

        // Assert: one lookup per request, the first connection went (or, with no route out,
        // failed to go) to the address that was checked, the second was refused, and loopback
        // was never reached.
        drop(first);
        let second = second.unwrap_err();
        assert!(second.contains("127.0.0.1"), "{second}");
        assert_eq!(lookups.load(SeqCst), 2);
        assert_eq!(reached.load(SeqCst), 0);
    }
}
