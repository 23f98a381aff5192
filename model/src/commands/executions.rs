//! Checking the `execute` links between the commands files of a project: unknown files
//! and files whose execution never ends.

use super::{message, Commands, Instruction};
use crate::diag::Code::*;
use crate::diag::Diagnostic;
use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// Checks the `execute` instructions of a project's commands files: CMD_INEXISTING_COMMAND
/// for an unknown file, CMD_NASTY_LOOPING_COMMAND when running the other file never ends
/// (it leads into a loop). A file executing itself is CMD_LOOPING_COMMAND, from
/// [`parse`](super::parse).
pub fn check_executions<'a, I>(all: I) -> Vec<Diagnostic>
where
    I: IntoIterator<Item = (&'a Path, &'a Commands)>,
{
    let all: Vec<(&Path, &Commands)> = all.into_iter().collect();
    let named = all
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (c.name.as_str(), i));
    let index: HashMap<&str, usize> = named.collect();
    let execs = |c: &'a Commands| {
        c.instructions.iter().filter_map(|ins| match ins {
            Instruction::Execute { line, command } => Some((*line, command.as_str())),
            _ => None,
        })
    };
    // A file ends when all the files it runs end: peel those off, the rest loops.
    let mut pending = vec![0usize; all.len()];
    let mut callers = vec![Vec::new(); all.len()];
    for (i, (_, c)) in all.iter().enumerate() {
        for j in execs(c).filter_map(|(_, target)| index.get(target)) {
            pending[i] += 1;
            callers[*j].push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..all.len()).filter(|&i| pending[i] == 0).collect();
    while let Some(j) = queue.pop_front() {
        for &i in &callers[j] {
            pending[i] -= 1;
            if pending[i] == 0 {
                queue.push_back(i);
            }
        }
    }
    let mut diags = Vec::new();
    for (i, (file, c)) in all.iter().enumerate() {
        for (line, target) in execs(c) {
            let code = match index.get(target) {
                None => CMD_INEXISTING_COMMAND,
                Some(&j) if j != i && pending[j] > 0 => CMD_NASTY_LOOPING_COMMAND,
                Some(_) => continue,
            };
            diags.push(Diagnostic::new(code, file, line, 1, message(code, target)));
        }
    }
    diags
}
