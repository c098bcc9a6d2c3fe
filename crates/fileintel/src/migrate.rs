//! `fileintel migrate`: brings a PostgreSQL database's schema up to date, and moves an
//! embedded store into PostgreSQL.
//!
//! `serve` and every other command given `--database-url` migrate the schema at start too;
//! `migrate` alone is for doing it once, ahead of a rollout.
//!
//! With `--from-data-dir DIR --to URL`, everything the embedded store holds moves into the
//! database, resumably ([`fileintel_postgres::migrate`]); this shows how it goes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use fileintel_postgres::migrate::{Report, move_store};
use fileintel_store::FjallStore;
use indicatif::{ProgressBar, ProgressStyle};

use crate::DatabaseArgs;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Move the embedded store in this data directory (no server may hold it) into the database.
    #[arg(long, requires = "to")]
    from_data_dir: Option<PathBuf>,
    /// The PostgreSQL to move it into (`postgres://...`).
    #[arg(long)]
    to: Option<String>,
    /// Files per page (each page is one ingest call and one progress mark).
    #[arg(long, default_value_t = 2_000)]
    page: usize,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let mut database = args.database.clone();
        if let Some(to) = &args.to {
            database.database_url = Some(to.clone());
        }
        let Some(settings) = database.settings() else {
            bail!("migrate needs --database-url (or --to): the embedded store migrates itself when opened");
        };
        // Connecting applies every migration not yet applied, under an advisory lock.
        let target = fileintel_server::backend::connect_database(&settings).await?;
        let version = target.schema_version().await.context("reading the schema version")?;
        eprintln!("the database's schema is at version {version}");
        let Some(dir) = &args.from_data_dir else { return Ok(ExitCode::SUCCESS) };
        let source = FjallStore::open(dir).with_context(|| format!("opening the store in {}", dir.display()))?;
        move_store(&source, &target, dir, &settings.url, args.page.max(1), &mut Shown::default()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The move's progress as the operator sees it: a bar while files move, a line per stage.
#[derive(Default)]
struct Shown {
    bar: Option<ProgressBar>,
}

impl Report for Shown {
    fn say(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn files(&mut self, moved: u64, total: u64) {
        self.bar.get_or_insert_with(|| bar(total, "files")).set_position(moved);
    }

    fn files_done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {what} {{per_sec}} eta {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
