//! Threat-intelligence feeds read into what each says about files, pure (bytes in, statements
//! and rejections out). A statement becomes a [`Verdict`] once the feed's configured name, trust
//! rank and label mapping are applied ([`Source::verdict`]).
//!
//! Formats so far:
//! - `csv`: `hash,determinationType,determinationValue` (a header line is optional; the hash
//!   is an MD5, SHA-1 or SHA-256);
//! - `bazaar-csv`: abuse.ch MalwareBazaar's CSV exports (`first_seen_utc`, `sha256_hash`,
//!   `md5_hash`, `sha1_hash`, `reporter`, `file_name`, `file_type_guess`, `mime_type`,
//!   `signature`, ...; `#` comment lines), every row a malware sample named by its `signature`;
//! - `stix`: STIX 2.1 bundles (see [`stix`](crate::stix) for what a pattern may say);
//! - `misp`: MISP events as MISP exports them (see [`misp`](crate::misp)).

pub mod misp;
pub mod stix;

use std::collections::HashMap;

use fileintel_core::{DeterminationType, FileHash, FileHashes, Position, Rejection, Timestamp, Verdict, VerdictSource};

/// What a feed says about one file, before the feed's configuration is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub hashes: FileHashes,
    /// The feed's own label for it (`malware`, `pua`, a determination type, ...).
    pub label: String,
    /// The threat or verdict name.
    pub value: Option<String>,
    pub said_at: Option<Timestamp>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub revoked: bool,
    /// Where in the feed: `line 12`, a STIX id, ...
    pub reference: String,
    /// Its position, for rejecting it.
    pub at: Position,
}

/// The formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    BazaarCsv,
    Stix,
    Misp,
}

impl Format {
    const ALL: [Format; 4] = [Format::Csv, Format::BazaarCsv, Format::Stix, Format::Misp];

    /// The format's name, as `--format` and `?format=` take it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::BazaarCsv => "bazaar-csv",
            Format::Stix => "stix",
            Format::Misp => "misp",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Format::ALL.into_iter().find(|format| format.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|format| format.name()).collect();
            format!("'{text}' is not a feed format: {}", names.join(", "))
        })
    }
}

/// The statements of a feed, and what was rejected, where and why.
#[derive(Debug, Default)]
pub struct Read {
    pub statements: Vec<Statement>,
    pub rejections: Vec<Rejection>,
}

/// Reads a whole feed.
pub fn read(format: Format, bytes: &[u8]) -> Read {
    match format {
        Format::Csv => read_plain_csv(bytes),
        Format::BazaarCsv => read_bazaar_csv(bytes),
        Format::Stix => stix::read(bytes),
        Format::Misp => misp::read(bytes),
    }
}

fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes)
}

/// The 1-based line a record starts on, counted from its byte offset: the csv crate's own line
/// count skips comment lines, and a record's offset can point at the blank and comment lines
/// before it. Records come in order, so each count goes on from the last one: a feed is read in
/// one pass, not one pass per record.
struct Lines<'a> {
    bytes: &'a [u8],
    /// The offset counted up to, and the line it is on.
    counted: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines { bytes, counted: 0, line: 1 }
    }

    fn line_of(&mut self, position: Option<&csv::Position>) -> u64 {
        let bytes = self.bytes;
        let mut offset = position.map_or(0, |position| position.byte() as usize).min(bytes.len());
        // The csv reader skips blank lines and comment lines before a record; so does the count.
        while matches!(bytes.get(offset), Some(b'#' | b'\n' | b'\r')) {
            match memchr::memchr(b'\n', &bytes[offset..]) {
                Some(end) => offset += end + 1,
                None => break,
            }
        }
        if offset < self.counted {
            (self.counted, self.line) = (0, 1);
        }
        self.line += memchr::memchr_iter(b'\n', &bytes[self.counted..offset]).count() as u64;
        self.counted = offset;
        self.line
    }
}

/// A field as written, trimmed, and unquoted where a space before the quote kept the csv
/// reader from seeing it (MalwareBazaar writes `"a", "b"`).
fn unquoted(field: &str) -> &str {
    let field = field.trim();
    field.strip_prefix('"').and_then(|field| field.strip_suffix('"')).unwrap_or(field)
}

/// The records of a CSV feed with the lines they start on, or the rejection of what is not CSV.
fn records(bytes: &[u8]) -> impl Iterator<Item = Result<(u64, csv::StringRecord), Rejection>> + '_ {
    let mut lines = Lines::new(bytes);
    csv_reader(bytes).into_records().map(move |record| match record {
        Ok(record) => Ok((lines.line_of(record.position()), record)),
        Err(error) => {
            let line = lines.line_of(error.position());
            Err(Rejection::new(Position::Line(line), format!("not CSV: {error}")))
        }
    })
}

fn read_plain_csv(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    for (index, record) in records(bytes).enumerate() {
        let (line, record) = match record {
            Ok(record) => record,
            Err(rejection) => {
                read.rejections.push(rejection);
                continue;
            }
        };
        let field = |at: usize| unquoted(record.get(at).unwrap_or_default());
        if index == 0 && field(0).eq_ignore_ascii_case("hash") {
            continue;
        }
        let hash = match FileHash::parse(field(0)) {
            Ok(hash) => hash,
            Err(error) => {
                read.rejections.push(Rejection::new(Position::Line(line), format!("hash: {error}")));
                continue;
            }
        };
        if field(1).is_empty() {
            read.rejections.push(Rejection::new(Position::Line(line), "no determinationType"));
            continue;
        }
        read.statements.push(Statement {
            hashes: FileHashes::from(hash),
            label: field(1).to_owned(),
            value: Some(field(2).to_owned()).filter(|value| !value.is_empty()),
            said_at: None,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: format!("line {line}"),
            at: Position::Line(line),
        });
    }
    read
}

/// MalwareBazaar's columns, by the names its header comment gives them.
const BAZAAR_COLUMNS: [&str; 9] = [
    "first_seen_utc",
    "sha256_hash",
    "md5_hash",
    "sha1_hash",
    "reporter",
    "file_name",
    "file_type_guess",
    "mime_type",
    "signature",
];

fn read_bazaar_csv(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    for record in records(bytes) {
        let (line, record) = match record {
            Ok(record) => record,
            Err(rejection) => {
                read.rejections.push(rejection);
                continue;
            }
        };
        let field = |name: &str| {
            BAZAAR_COLUMNS
                .iter()
                .position(|column| *column == name)
                .and_then(|at| record.get(at))
                .map(unquoted)
                .unwrap_or_default()
        };
        if field("sha256_hash") == "sha256_hash" {
            continue; // a header row that is not a comment
        }
        let mut hashes = FileHashes::default();
        let mut problems = Vec::new();
        for (column, hash) in
            ["sha256_hash", "md5_hash", "sha1_hash"].map(|column| (column, FileHash::parse(field(column))))
        {
            match hash {
                Ok(FileHash::Sha256(hash)) if column == "sha256_hash" => hashes.sha256 = Some(hash),
                Ok(FileHash::Md5(hash)) if column == "md5_hash" => hashes.md5 = Some(hash),
                Ok(FileHash::Sha1(hash)) if column == "sha1_hash" => hashes.sha1 = Some(hash),
                Ok(_) => problems.push(format!("{column} holds another kind of hash")),
                Err(error) if !field(column).is_empty() => problems.push(format!("{column}: {error}")),
                Err(_) => {}
            }
        }
        if !problems.is_empty() || hashes == FileHashes::default() {
            let reason = if problems.is_empty() { "no hash".to_owned() } else { problems.join("; ") };
            read.rejections.push(Rejection::new(Position::Line(line), reason));
            continue;
        }
        let first_seen = field("first_seen_utc");
        let said_at = match Timestamp::parse_utc(first_seen) {
            Ok(time) => Some(time),
            Err(error) => {
                read.rejections.push(Rejection::new(Position::Line(line), format!("first_seen_utc: {error}")));
                continue;
            }
        };
        let signature = field("signature");
        read.statements.push(Statement {
            hashes,
            label: "malware".to_owned(),
            value: Some(signature.to_owned()).filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("n/a")),
            said_at,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: format!("line {line}"),
            at: Position::Line(line),
        });
    }
    read
}

/// A feed as configured: its name, trust rank, how its labels map to determinations, and who
/// may write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub rank: i32,
    /// Lower-cased label → determination; consulted before [`default_mapping`].
    pub labels: HashMap<String, DeterminationType>,
    /// Who may import into it. A feed's verdicts speak to every tenant, so by default only the
    /// operator may ([`Writer::Operator`]).
    pub writers: Vec<Writer>,
    /// The tenant whose own source it is, if it is one: its verdicts speak to that tenant alone
    /// ([`VerdictSource::TenantFeed`]), and by default the operator and that tenant write it.
    pub tenant: Option<String>,
}

/// Who imports into a feed source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The operator: `fileintel feeds import` on the data directory, or through the running
    /// server's admin socket. Written `"operator"` in the configuration; no API caller is it,
    /// whatever its tenant is called.
    Operator,
    /// A tenant's applications and users with `Ti.ReadWrite.All`, through `POST /api/feeds/import`.
    Tenant(String),
}

impl Writer {
    /// A writer as the configuration names it: `operator`, or a tenant's name.
    fn named(name: &str) -> Result<Writer, String> {
        match name {
            "operator" => Ok(Writer::Operator),
            "" => Err("a writer's name is empty".to_owned()),
            tenant => Ok(Writer::Tenant(tenant.to_owned())),
        }
    }
}

/// The labels fileintel maps by default (the README lists them): MDE's own type names, and
/// the common words of STIX `indicator_types`, MISP tags and feed exports.
pub fn default_mapping(label: &str) -> Option<DeterminationType> {
    use DeterminationType::*;
    let label = label.trim().to_ascii_lowercase();
    Some(match label.as_str() {
        "malware" | "malicious" | "malicious-activity" | "trojan" | "ransomware" | "backdoor" | "virus" | "worm"
        | "exploit" | "compromised" | "attribution" => Malware,
        "unwanted" | "anomalous-activity" | "suspicious" | "hacktool" | "riskware" => Unwanted,
        "pua" | "pup" | "adware" | "potentially-unwanted" | "potentially unwanted" | "grayware" => Pua,
        "clean" | "benign" | "allowed" | "whitelist" | "allowlist" | "known-good" => Clean,
        "unknown" => Unknown,
        _ => return None,
    })
}

/// A feed source as a configuration file writes it:
/// `{"name": "bazaar", "rank": 40, "labels": {"grayware": "Unwanted"}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfiguredSource {
    name: String,
    rank: i32,
    #[serde(default)]
    labels: HashMap<String, String>,
    /// `"operator"` and tenant names; absent: the operator alone (and the owner, for a
    /// tenant's own source).
    writers: Option<Vec<String>>,
    /// The tenant whose own source it is: it speaks to that tenant alone.
    tenant: Option<String>,
}

/// The feed sources of a configuration file (a JSON array of sources); names must be unique.
pub fn sources_from_json(bytes: &[u8]) -> Result<Vec<Source>, String> {
    let configured: Vec<ConfiguredSource> =
        serde_json::from_slice(bytes).map_err(|error| format!("feed sources: {error}"))?;
    let mut sources: Vec<Source> = Vec::with_capacity(configured.len());
    for source in configured {
        if source.name.is_empty() || sources.iter().any(|known| known.name == source.name) {
            return Err(format!("feed sources: the name '{}' is empty or given twice", source.name));
        }
        let mut labels = HashMap::new();
        for (label, kind) in source.labels {
            let kind: DeterminationType =
                kind.parse().map_err(|error| format!("feed source {}: {error}", source.name))?;
            labels.insert(label.trim().to_ascii_lowercase(), kind);
        }
        let owner = match source.tenant {
            // A '/' would let two tenants' sources share a stored key (`tenant-feed/a/b/c`).
            Some(tenant) => match Writer::named(&tenant) {
                Ok(Writer::Tenant(tenant)) if !tenant.contains('/') => Some(tenant),
                _ => return Err(format!("feed source {}: 'tenant' must name a tenant (no '/')", source.name)),
            },
            None => None,
        };
        let writers: Vec<Writer> = match source.writers {
            None => std::iter::once(Writer::Operator).chain(owner.clone().map(Writer::Tenant)).collect(),
            Some(names) => names
                .iter()
                .map(|name| Writer::named(name))
                .collect::<Result<_, _>>()
                .map_err(|error| format!("feed source {}: {error}", source.name))?,
        };
        // A tenant's own source speaks to it alone: no other tenant may write what it is told.
        if let Some(owner) = &owner
            && let Some(Writer::Tenant(other)) =
                writers.iter().find(|writer| matches!(writer, Writer::Tenant(name) if name != owner))
        {
            return Err(format!(
                "feed source {}: it is the tenant '{owner}''s own, so the tenant '{other}' may not write it",
                source.name
            ));
        }
        sources.push(Source { name: source.name, rank: source.rank, labels, writers, tenant: owner });
    }
    Ok(sources)
}

impl Source {
    pub fn new(name: impl Into<String>, rank: i32) -> Self {
        Self { name: name.into(), rank, labels: HashMap::new(), writers: vec![Writer::Operator], tenant: None }
    }

    /// Who the source's verdicts are stored as: the operator's feed, or a tenant's own.
    pub fn verdict_source(&self) -> VerdictSource {
        match &self.tenant {
            Some(tenant) => VerdictSource::TenantFeed { tenant: tenant.clone(), name: self.name.clone() },
            None => VerdictSource::Feed { name: self.name.clone() },
        }
    }

    /// Whether `writer` may import into this source, and why not when it may not.
    pub fn check_writer(&self, writer: &Writer) -> Result<(), String> {
        if self.writers.contains(writer) {
            return Ok(());
        }
        let who = match writer {
            Writer::Operator => "The operator".to_owned(),
            Writer::Tenant(tenant) => format!("The tenant '{tenant}'"),
        };
        Err(format!(
            "{who} may not write the feed source '{}': its verdicts speak to {}, and its configuration \
             (--feed-sources, \"writers\") does not name this writer.",
            self.name,
            self.tenant.as_ref().map_or_else(|| "every tenant".to_owned(), |tenant| format!("the tenant '{tenant}'"))
        ))
    }

    /// What a label means for this source: its own mapping first, then the default. A
    /// comma-separated list of labels (STIX's `indicator_types` and `labels`) means what its
    /// first label that maps means.
    pub fn determination(&self, label: &str) -> Option<DeterminationType> {
        label.split(',').find_map(|label| {
            self.labels.get(&label.trim().to_ascii_lowercase()).copied().or_else(|| default_mapping(label))
        })
    }

    /// The verdict a statement makes for this source; `Err` when its label means nothing known.
    pub fn verdict(&self, statement: Statement) -> Result<(FileHashes, Verdict), String> {
        let determination_type = self
            .determination(&statement.label)
            .ok_or_else(|| format!("label '{}' maps to no determination", statement.label))?;
        Ok((
            statement.hashes,
            Verdict {
                source: self.verdict_source(),
                determination_type,
                determination_value: statement.value,
                rank: self.rank,
                said_at: statement.said_at,
                valid_from: statement.valid_from,
                valid_until: statement.valid_until,
                revoked: statement.revoked,
                reference: Some(statement.reference),
            },
        ))
    }
}

/// The verdicts a feed's statements make for `source`; statements whose label maps to nothing
/// are rejected at their position.
pub fn verdicts(source: &Source, read: Read) -> (Vec<(FileHashes, Verdict)>, Vec<Rejection>) {
    let mut rejections = read.rejections;
    let mut verdicts = Vec::with_capacity(read.statements.len());
    for statement in read.statements {
        let at = statement.at;
        match source.verdict(statement) {
            Ok(verdict) => verdicts.push(verdict),
            Err(reason) => rejections.push(Rejection::new(at, reason)),
        }
    }
    (verdicts, rejections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_read_back_from_its_name_and_an_unknown_name_lists_them() {
        // The names the README and `--format`'s help document.
        let documented =
            [("csv", Format::Csv), ("bazaar-csv", Format::BazaarCsv), ("stix", Format::Stix), ("misp", Format::Misp)];
        for (name, format) in documented {
            assert_eq!(name.parse::<Format>(), Ok(format));
            assert_eq!(format.name(), name);
        }
        assert_eq!("json".parse::<Format>(), Err("'json' is not a feed format: csv, bazaar-csv, stix, misp".into()));
    }

    const SHA256: &str = "094fd325049b8a9cf6d3e5ef2a6d4cc6a567d7d49c35f8bb8dd9e3c6acf3d78d";
    const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";
    const MD5: &str = "f31b4b4d9c4b4a2e8e0f0c6a1b2c3d4e";

    #[test]
    fn plain_csv_reads_hashes_types_and_names_and_rejects_by_line() {
        let feed = format!(
            "hash,determinationType,determinationValue\n{SHA1},Malware,Trojan:Win32/Emotet\n{MD5},pua,\nnot-a-hash,Malware,x\n{SHA256},,\n"
        );
        let read = read(Format::Csv, feed.as_bytes());
        assert_eq!(read.statements.len(), 2);
        assert_eq!(read.statements[0].hashes.sha1.unwrap().to_string(), SHA1);
        assert_eq!(read.statements[0].value.as_deref(), Some("Trojan:Win32/Emotet"));
        assert_eq!(read.statements[0].reference, "line 2");
        assert_eq!(read.statements[1].value, None);
        let lines: Vec<Position> = read.rejections.iter().map(|rejection| rejection.at).collect();
        assert_eq!(lines, [Position::Line(4), Position::Line(5)]);
        let source = Source::new("team-list", 50);
        let (_, verdict) = source.verdict(read.statements[1].clone()).unwrap();
        assert_eq!(verdict.determination_type, DeterminationType::Pua);
    }

    #[test]
    fn lines_are_counted_past_comments_and_fields_that_span_lines() {
        let feed = format!(
            "hash,determinationType,determinationValue\n# a comment\n{SHA1},Malware,\"two\nlines\"\n\n# two\n# comments\n{MD5},pua,\nbad,Malware,x\n{SHA256},Malware,x\n"
        );
        let read = read(Format::Csv, feed.as_bytes());
        // Where each hash is in the text, found by searching for it.
        let line_of_text = |text: &str| 1 + feed[..feed.find(text).unwrap()].matches('\n').count() as u64;
        let lines: Vec<Position> = read.statements.iter().map(|statement| statement.at).collect();
        let expected: Vec<Position> =
            [SHA1, MD5, SHA256].iter().map(|hash| Position::Line(line_of_text(hash))).collect();
        assert_eq!(lines, expected);
        assert_eq!(
            read.rejections.iter().map(|rejection| rejection.at).collect::<Vec<_>>(),
            [Position::Line(line_of_text("bad,"))]
        );
    }

    #[test]
    fn bazaar_csv_reads_all_three_hashes_the_time_and_the_family() {
        let feed = format!(
            "################################################################\n\
             # MalwareBazaar full data dump (CSV)                           #\n\
             ################################################################\n\
             # \"first_seen_utc\",\"sha256_hash\",\"md5_hash\",\"sha1_hash\",\"reporter\",\"file_name\",\"file_type_guess\",\"mime_type\",\"signature\",\"clamav\",\"vtpercent\",\"imphash\",\"ssdeep\",\"tlsh\"\n\
             \"2024-03-01 10:11:12\", \"{SHA256}\", \"{MD5}\", \"{SHA1}\", \"abuse_ch\", \"invoice.exe\", \"exe\", \"application/x-dosexec\", \"AgentTesla\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
             \"2024-03-01 10:12:00\", \"{SHA256}\", \"{MD5}\", \"{SHA1}\", \"abuse_ch\", \"x.exe\", \"exe\", \"application/x-dosexec\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
             \"yesterday\", \"{SHA256}\", \"{MD5}\", \"{SHA1}\", \"abuse_ch\", \"y.exe\", \"exe\", \"\", \"n/a\"\n\
             \"2024-03-01 10:13:00\", \"{SHA1}\", \"{MD5}\", \"{SHA1}\", \"abuse_ch\", \"z.exe\", \"exe\", \"\", \"n/a\"\n"
        );
        let read = read(Format::BazaarCsv, feed.as_bytes());
        assert_eq!(read.statements.len(), 2, "{:?}", read.rejections);
        let first = &read.statements[0];
        assert_eq!(first.hashes.sha256.unwrap().to_string(), SHA256);
        assert_eq!(first.hashes.md5.unwrap().to_string(), MD5);
        assert_eq!(first.hashes.sha1.unwrap().to_string(), SHA1);
        assert_eq!(first.value.as_deref(), Some("AgentTesla"));
        assert_eq!(first.said_at.unwrap().to_string(), "2024-03-01T10:11:12Z");
        assert_eq!((first.at, read.statements[1].at), (Position::Line(5), Position::Line(6)));
        assert_eq!(read.statements[1].value, None, "n/a is no name");
        let reasons: Vec<(Position, String)> =
            read.rejections.iter().map(|rejection| (rejection.at, rejection.reason.clone())).collect();
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].0, Position::Line(7));
        assert!(reasons[0].1.starts_with("first_seen_utc"), "{reasons:?}");
        assert_eq!(reasons[1].0, Position::Line(8));
        assert!(reasons[1].1.contains("sha256_hash holds another kind of hash"), "{reasons:?}");
        let (hashes, verdict) = Source::new("bazaar", 40).verdict(first.clone()).unwrap();
        assert_eq!(hashes, first.hashes);
        assert_eq!(verdict.determination_type, DeterminationType::Malware);
        assert_eq!(verdict.rank, 40);
    }

    #[test]
    fn sources_are_configured_in_json_and_mistakes_are_named() {
        let sources = sources_from_json(
            br#"[{"name":"bazaar","rank":40},{"name":"vendor","rank":80,"labels":{"GrayWare":"pua"}}]"#,
        )
        .unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[1].determination("grayware"), Some(DeterminationType::Pua));
        assert!(sources_from_json(br#"[{"name":"a","rank":1},{"name":"a","rank":2}]"#).unwrap_err().contains("twice"));
        assert!(sources_from_json(br#"[{"name":"a","rank":1,"labels":{"x":"Evil"}}]"#).unwrap_err().contains("Evil"));
        assert!(sources_from_json(br#"[{"name":"a"}]"#).unwrap_err().contains("rank"));
    }

    #[test]
    fn only_the_operator_writes_a_source_unless_its_writers_are_named() {
        let sources = sources_from_json(
            br#"[{"name":"bazaar","rank":40},{"name":"shared","rank":30,"writers":["operator","contoso"]},
                {"name":"closed","rank":1,"writers":[]}]"#,
        )
        .unwrap();
        let contoso = Writer::Tenant("contoso".into());
        let operator_tenant = Writer::Tenant("operator".into());
        assert!(sources[0].check_writer(&Writer::Operator).is_ok());
        assert!(sources[0].check_writer(&contoso).is_err(), "by default no tenant writes a feed");
        assert!(sources[1].check_writer(&contoso).is_ok() && sources[1].check_writer(&Writer::Operator).is_ok());
        assert!(sources[1].check_writer(&operator_tenant).is_err(), "a tenant named operator is not the operator");
        assert!(sources[2].check_writer(&Writer::Operator).is_err());
        let error = sources_from_json(br#"[{"name":"a","rank":1,"writers":[""]}]"#).unwrap_err();
        assert!(error.contains("feed source a: a writer's name is empty"), "{error}");
    }

    #[test]
    fn a_sources_own_labels_come_before_the_defaults_and_unknown_labels_are_refused() {
        let mut source = Source::new("vendor", 10);
        source.labels.insert("grayware".into(), DeterminationType::Unwanted);
        assert_eq!(source.determination("GrayWare"), Some(DeterminationType::Unwanted));
        assert_eq!(source.determination("adware"), Some(DeterminationType::Pua));
        let statement = Statement {
            hashes: FileHashes::default(),
            label: "weird".into(),
            value: None,
            said_at: None,
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: "line 1".into(),
            at: Position::Line(1),
        };
        assert!(source.verdict(statement).unwrap_err().contains("maps to no determination"));
    }
}
