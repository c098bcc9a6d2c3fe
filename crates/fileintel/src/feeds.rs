//! `fileintel feeds import`: threat-intelligence feeds into the store (`--data-dir`) or through
//! a running server (`--server`, `POST /api/feeds/import`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fileintel_feeds::{Format, Source};
use fileintel_server::backend::open_store;

#[derive(clap::Subcommand)]
pub enum FeedsCommand {
    /// Import feed files: what each says about files becomes a verdict of the named source.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The feed's format: csv (hash,determinationType,determinationValue), bazaar-csv
    /// (abuse.ch MalwareBazaar's exports), stix (STIX 2.1 bundles) or misp (MISP event JSON).
    #[arg(long)]
    format: Format,
    /// The feed source the verdicts belong to (its trust rank and labels come from
    /// --feed-sources when it is configured there; through a running server, from the server's).
    #[arg(long)]
    source: String,
    /// The source's trust rank when --feed-sources does not configure it (higher wins); through a
    /// server (--server, or one holding the data directory), the server's configuration decides.
    #[arg(long, default_value_t = 0, conflicts_with = "server")]
    rank: i32,
    /// Feed sources: a JSON array of {"name", "rank", "labels": {label: determinationType},
    /// "writers": ["operator", TENANT...], "tenant": TENANT (a tenant's own source)}; a --source
    /// it does not list is refused.
    #[arg(long, env = "FILEINTEL_FEED_SOURCES")]
    feed_sources: Option<PathBuf>,
    /// Where to record them; when a server holds the data directory, the import goes through its
    /// admin socket, as the operator.
    #[command(flatten)]
    store: crate::StoreArgs,
    /// Send the feeds to a running fileintel instead, which applies its own source configuration.
    #[arg(long, env = "FILEINTEL_SERVER")]
    server: Option<String>,
    /// Bearer token for --server (an application token with Ti.ReadWrite.All).
    #[arg(long, env = "FILEINTEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The files are the whole feed: what the source said before about hashes none of them
    /// lists stops speaking (kept as history in /determinations). Without it, an import adds.
    #[arg(long)]
    replace: bool,
    /// Feed files (folders are walked).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// A running server an import goes through.
enum Via<'a> {
    /// `--server`: `POST /api/feeds/import`, as the token's tenant.
    Http(&'a str),
    /// The server holding the data directory: its admin socket, as the operator.
    Socket(fileintel_server::admin::Admin),
}

/// The configured sources of a `--feed-sources` file, or none.
pub fn load_sources(path: Option<&PathBuf>) -> anyhow::Result<Vec<Source>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    fileintel_feeds::sources_from_json(&bytes).map_err(anyhow::Error::msg)
}

pub fn run(command: FeedsCommand) -> anyhow::Result<ExitCode> {
    let FeedsCommand::Import(args) = command;
    // Every feed file is found before anything is opened or created.
    let files = crate::ingest::expand_inputs(&args.files)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let mut rejected = 0;
    // Through a running server: named (`--server`, as a tenant), or holding the data directory
    // (its admin socket, as the operator); either applies the server's own source configuration.
    let via = match &args.server {
        Some(server) => Some(Via::Http(server)),
        None => {
            runtime.block_on(fileintel_server::admin::Admin::running_server(&args.store.settings())).map(Via::Socket)
        }
    };
    if let Some(via) = via {
        if args.replace && files.len() > 1 {
            anyhow::bail!("--replace through a server takes one file: the whole feed (each request is one import)");
        }
        for file in &files {
            let answer = match &via {
                Via::Http(server) => runtime.block_on(crate::ingest::upload(file, |input, progress| {
                    let (token, source) = (args.token.as_deref(), args.source.as_str());
                    fileintel_server::remote::post_feed(
                        server,
                        token,
                        input,
                        args.format,
                        source,
                        args.replace,
                        progress,
                    )
                })),
                Via::Socket(admin) => {
                    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    runtime
                        .block_on(admin.import_feed(args.format, &args.source, args.replace, bytes))
                        .map_err(Into::into)
                }
            }
            .with_context(|| format!("sending {}", file.display()))?;
            rejected += answer["rejected"].as_array().map_or(0, Vec::len);
            println!("{}", serde_json::json!({"file": file.display().to_string(), "answer": answer}));
        }
        return Ok(crate::exit::import(rejected > 0));
    }
    let sources = load_sources(args.feed_sources.as_ref())?;
    let source = match sources.iter().find(|source| source.name == args.source) {
        Some(source) => source.clone(),
        // Without a configuration, an operator's source of --rank. With one, a name it does not
        // list is a mistake (a tenant's own source imported as everyone's, say), not a new feed.
        None if args.feed_sources.is_none() => Source::new(args.source.clone(), args.rank),
        None => anyhow::bail!(
            "--feed-sources configures no source '{}' (it configures: {})",
            args.source,
            sources.iter().map(|source| source.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let store = runtime.block_on(open_store(&args.store.settings()))?.shared();
    let mode = if args.replace { fileintel_server::ImportMode::Replace } else { fileintel_server::ImportMode::Add };
    let operator = fileintel_feeds::Writer::Operator;
    let mut import =
        fileintel_server::FeedImport::new(store.as_ref(), &source, &operator, mode).map_err(anyhow::Error::msg)?;
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let fileintel_server::Imported { taken, changed, rejections } =
            runtime.block_on(import.import(args.format, bytes))?;
        for rejection in &rejections {
            eprintln!("{}: {}: {}", file.display(), rejection.at, rejection.reason);
        }
        rejected += rejections.len();
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "source": source.name, "taken": taken,
                "changed": changed, "rejected": rejections.len()})
        );
    }
    match runtime.block_on(import.finish())? {
        Ok(ended) if args.replace => println!("{}", serde_json::json!({"source": source.name, "ended": ended})),
        Ok(_) => {}
        Err(reason) => {
            eprintln!("{reason}");
            println!("{}", serde_json::json!({"source": source.name, "ended": 0, "notReplaced": reason}));
        }
    }
    Ok(crate::exit::import(rejected > 0))
}
