//! `parapet generate` (hidden): the man pages and shell completions,
//! written from the command line's own definition when the Debian package
//! is built (scripts/deb), so they never drift from the binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// One roff page per command into DIR: parapet.1, parapet-serve.1...
    Man { dir: PathBuf },
    /// Completion scripts into DIR: parapet.bash, _parapet (zsh), parapet.fish.
    Completions { dir: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cmd = crate::Cli::command();
    match args.what {
        What::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
        What::Completions { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let mut cmd = cmd.clone();
                clap_complete::generate_to(shell, &mut cmd, "parapet", &dir).with_context(
                    || format!("cannot write {shell} completions to {}", dir.display()),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
