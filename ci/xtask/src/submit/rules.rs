//! The checks of `series check` that need no kernel tree: commit message
//! form, tags, and rules on the added lines of a diff. Pure functions over
//! text, unit-tested unprivileged.

/// What a check found: nothing (`Ok`), or the problems, one per line.
pub type Findings = Vec<String>;

/// A commit as `git log` gives it.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub subject: String,
    /// The message after the subject line.
    pub body: String,
}

/// Longest subject netdev accepts.
pub const MAX_SUBJECT: usize = 75;
/// Most patches in one posted series (netdev FAQ).
pub const MAX_PATCHES: usize = 15;

/// `subsys: summary`, at most 75 characters, unique within the series.
pub fn subject(c: &Commit, all: &[Commit]) -> Findings {
    let mut f = Vec::new();
    let s = &c.subject;
    if s.chars().count() > MAX_SUBJECT {
        f.push(format!(
            "subject is {} characters, the limit is {MAX_SUBJECT}",
            s.chars().count()
        ));
    }
    match s.split_once(": ") {
        Some((prefix, summary)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.split(", ").all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || "_-/.".contains(ch))
                });
            if !prefix_ok {
                f.push(format!(
                    "subject prefix {prefix:?} is not of the form `subsys:` or `subsys, other:`"
                ));
            }
            if summary.trim().is_empty() {
                f.push("subject has no summary after the prefix".into());
            } else if summary.ends_with('.') {
                f.push("subject ends with a period".into());
            }
        }
        None => f.push(format!(
            "subject {s:?} is not of the form `subsys: summary`"
        )),
    }
    let dups = all.iter().filter(|o| o.subject == *s).count();
    if dups > 1 {
        f.push(format!("subject is used by {dups} patches of the series"));
    }
    let text: String = c
        .body
        .lines()
        .filter(|l| !is_trailer(l))
        .collect::<Vec<_>>()
        .join("\n");
    if text.trim().is_empty() {
        f.push("commit message has no body: say why, not only what".into());
    }
    f
}

fn is_trailer(l: &str) -> bool {
    let l = l.trim();
    [
        "Signed-off-by:",
        "Acked-by:",
        "Reviewed-by:",
        "Tested-by:",
        "Suggested-by:",
        "Reported-by:",
        "Co-developed-by:",
        "Fixes:",
        "Link:",
        "Cc:",
        "Closes:",
    ]
    .iter()
    .any(|t| l.starts_with(t))
}

/// The author has a `Signed-off-by:` with their name and address.
pub fn signoff(c: &Commit) -> Findings {
    let want = format!("{} <{}>", c.author_name, c.author_email);
    let sobs: Vec<&str> = c
        .body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Signed-off-by:"))
        .map(str::trim)
        .collect();
    if sobs.contains(&want.as_str()) {
        return vec![];
    }
    if sobs.is_empty() {
        vec!["no Signed-off-by".into()]
    } else {
        vec![format!(
            "no Signed-off-by from the author {want} (found: {})",
            sobs.join("; ")
        )]
    }
}

/// The author (and so the Signed-off-by, see [`signoff`]) is a person
/// with an address that receives mail, not a placeholder a machine was
/// set up with: the reserved names of RFC 2606 and RFC 6761
/// (`example.*`, `.example`, `.invalid`, `.localhost`, `.test`), a
/// `noreply` address, or a name that is not a person's.
pub fn identity(c: &Commit) -> Findings {
    let fix = "set git config user.name and user.email (or GIT_AUTHOR_NAME and \
               GIT_AUTHOR_EMAIL) to your own and re-commit with --reset-author -s";
    identity_problems(&c.author_name, &c.author_email)
        .into_iter()
        .map(|p| format!("{p}; {fix}"))
        .collect()
}

/// What makes `name <email>` not a person's identity (see [`identity`]),
/// without the advice, which depends on who asks.
pub fn identity_problems(name: &str, email_addr: &str) -> Findings {
    const RESERVED_TLDS: &[&str] = &[
        "example",
        "invalid",
        "localhost",
        "test",
        "local",
        "localdomain",
    ];
    const NOT_NAMES: &[&str] = &["root", "your name", "user", "unknown", "nobody"];
    let mut f = Vec::new();
    let email = email_addr.to_ascii_lowercase();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return vec![format!("author address {:?} has no domain", email_addr)];
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let reserved = labels.len() < 2
        || labels.last().is_some_and(|t| RESERVED_TLDS.contains(t))
        || (labels.len() >= 2 && labels[labels.len() - 2] == "example");
    if reserved {
        f.push(format!(
            "author address <{}> is in a reserved domain and receives no mail",
            email_addr
        ));
    }
    if local.contains("noreply") || local.contains("no-reply") || domain.contains("noreply") {
        f.push(format!(
            "author address <{}> is a noreply address",
            email_addr
        ));
    }
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() || NOT_NAMES.contains(&lower.as_str()) {
        f.push(format!("author name {name:?} is not a person's"));
    }
    f
}

/// A parsed `Fixes:` tag: SHA and quoted subject.
#[derive(Debug, PartialEq, Eq)]
pub struct Fixes {
    pub sha: String,
    pub subject: String,
}

/// `Fixes: <12+ hex> ("subject")`, one per line. Returns the problems and
/// the well-formed tags (whose subjects the caller checks against the
/// tree's history when it has one).
pub fn fixes(c: &Commit) -> (Findings, Vec<Fixes>) {
    let mut f = Vec::new();
    let mut tags = Vec::new();
    for l in c.body.lines() {
        let Some(rest) = l.strip_prefix("Fixes:") else {
            continue;
        };
        let rest = rest.trim();
        let (sha, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let tail = tail.trim();
        let subj = tail.strip_prefix("(\"").and_then(|t| t.strip_suffix("\")"));
        let sha_ok =
            sha.len() >= 12 && sha.len() <= 40 && sha.chars().all(|c| c.is_ascii_hexdigit());
        match (sha_ok, subj) {
            (true, Some(s)) if !s.is_empty() => tags.push(Fixes {
                sha: sha.to_ascii_lowercase(),
                subject: s.to_string(),
            }),
            (false, _) => f.push(format!(
                "Fixes: tag {rest:?}: the SHA must be at least 12 hex digits"
            )),
            _ => f.push(format!(
                "Fixes: tag {rest:?}: the subject must follow as (\"subject\")"
            )),
        }
    }
    (f, tags)
}

/// Lines a diff adds, per file: (path, line).
pub fn added_lines(diff: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut file = String::new();
    for l in diff.lines() {
        if let Some(p) = l.strip_prefix("+++ ") {
            file = p.strip_prefix("b/").unwrap_or(p).to_string();
        } else if let Some(a) = l.strip_prefix('+') {
            if !file.is_empty() && file != "/dev/null" {
                out.push((file.clone(), a.to_string()));
            }
        }
    }
    out
}

/// No `inline` in .c files; functions in headers are `static inline`.
pub fn inline_rules(diff: &str) -> Findings {
    let mut f = Vec::new();
    for (file, l) in added_lines(diff) {
        let code = l
            .split("/*")
            .next()
            .unwrap_or("")
            .split("//")
            .next()
            .unwrap_or("");
        let has_inline = code
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == "inline");
        if !has_inline {
            continue;
        }
        if file.ends_with(".c") {
            f.push(format!("{file}: `inline` in a .c file: {}", l.trim()));
        } else if file.ends_with(".h") && !code.contains("static inline") {
            f.push(format!(
                "{file}: inline function in a header that is not `static inline`: {}",
                l.trim()
            ));
        }
    }
    f
}

/// Whether the lines of a list (Makefile variable, .gitignore, config)
/// are sorted; returns the first pair out of order.
pub fn first_unsorted(items: &[String]) -> Option<(String, String)> {
    items
        .windows(2)
        .find(|w| w[0] > w[1])
        .map(|w| (w[0].clone(), w[1].clone()))
}

/// The words of a Makefile variable assignment (`VAR := a b \` with
/// continuations, `VAR += c`), in order of appearance.
pub fn makefile_list(makefile: &str, var: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cont = false;
    for l in makefile.lines() {
        let t = l.trim();
        let rest = if cont {
            Some(t)
        } else {
            t.strip_prefix(var).and_then(|r| {
                let r = r.trim_start();
                ["+=", ":=", "="].iter().find_map(|op| r.strip_prefix(op))
            })
        };
        let Some(rest) = rest else {
            continue;
        };
        cont = rest.ends_with('\\');
        out.extend(
            rest.trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_string),
        );
    }
    out
}

/// The body lines of a `.gitignore` or `config` file worth sorting
/// (no comments or blanks).
pub fn list_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Kernel-doc or compiler warnings with the line numbers taken out, so
/// that the set before and after a patch compare.
pub fn normalize_warning(w: &str) -> String {
    let mut out = String::new();
    let mut chars = w.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push_str(":N");
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(subject: &str, body: &str) -> Commit {
        Commit {
            sha: "0".repeat(40),
            author_name: "A U Thor".into(),
            author_email: "a@example.org".into(),
            subject: subject.into(),
            body: body.into(),
        }
    }

    const SOB: &str = "Why this matters.\n\nSigned-off-by: A U Thor <a@example.org>\n";

    #[test]
    fn subject_form_length_and_uniqueness() {
        let good = commit("netkit: implement ndo_change_mtu", SOB);
        assert!(subject(&good, std::slice::from_ref(&good)).is_empty());
        let multi = commit("bpf, netkit: do a thing", SOB);
        assert!(subject(&multi, &[]).is_empty());
        let sub = commit("selftests/bpf: add a test", SOB);
        assert!(subject(&sub, &[]).is_empty());
        let none = commit("implement ndo_change_mtu", SOB);
        assert!(subject(&none, &[])[0].contains("subsys: summary"));
        let long = commit(&format!("netkit: {}", "x".repeat(70)), SOB);
        assert!(subject(&long, &[])[0].contains("the limit is 75"));
        let dot = commit("netkit: do it.", SOB);
        assert!(subject(&dot, &[])[0].contains("period"));
        let a = commit("netkit: same", SOB);
        assert!(subject(&a, &[a.clone(), a.clone()])[0].contains("2 patches"));
        let empty = commit(
            "netkit: no body",
            "Signed-off-by: A U Thor <a@example.org>\n",
        );
        assert!(subject(&empty, &[])[0].contains("no body"));
    }

    #[test]
    fn placeholder_identities_are_refused() {
        let mut c = commit("a: b", SOB);
        for (name, email, want) in [
            ("A U Thor", "a@kernel.org", 0),
            ("A U Thor", "a@users.noreply.github.com", 1),
            ("Seed maintainers", "m@users.noreply.r-seed.example", 2),
            ("A U Thor", "a@example.com", 1),
            ("A U Thor", "a@host.invalid", 1),
            ("A U Thor", "a@localhost", 1),
            ("root", "root@kernel.org", 1),
            ("A U Thor", "nobody", 1),
        ] {
            c.author_name = name.into();
            c.author_email = email.into();
            let f = identity(&c);
            assert_eq!(f.len(), want, "{name} <{email}>: {f:?}");
            assert!(
                f.iter().all(|m| m.contains("git config user.name")),
                "{f:?}"
            );
        }
    }

    #[test]
    fn signoff_must_be_the_authors() {
        assert!(signoff(&commit("a: b", SOB)).is_empty());
        assert_eq!(signoff(&commit("a: b", "text\n"))[0], "no Signed-off-by");
        let other = commit("a: b", "x\n\nSigned-off-by: Someone <s@example.org>\n");
        assert!(signoff(&other)[0].contains("from the author A U Thor <a@example.org>"));
    }

    #[test]
    fn fixes_tags_are_well_formed() {
        let c = commit(
            "a: b",
            "x\n\nFixes: 0123456789ab (\"netkit: add thing\")\nFixes: 0123 (\"short\")\nFixes: 0123456789abcdef netkit: no quotes\n",
        );
        let (f, tags) = fixes(&c);
        assert_eq!(
            tags,
            vec![Fixes {
                sha: "0123456789ab".into(),
                subject: "netkit: add thing".into()
            }]
        );
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("12 hex"));
        assert!(f[1].contains("(\\\"subject\\\")") || f[1].contains("subject must follow"));
    }

    #[test]
    fn inline_rules_on_added_lines_only() {
        let diff = "\
--- a/net/core/dev.c
+++ b/net/core/dev.c
@@ -1 +1,2 @@
 static inline int old(void) { return 0; }
+static inline int bad(void) { return 1; }
+int ok(void); /* inline in a comment is fine */
--- a/include/linux/x.h
+++ b/include/linux/x.h
@@ -1 +1,3 @@
+static inline int good(void) { return 0; }
+inline int bad_header(void) { return 0; }
+static __always_inline int also_fine(void) { return 0; }
";
        let f = inline_rules(diff);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].starts_with("net/core/dev.c: `inline` in a .c file"));
        assert!(f[1].starts_with("include/linux/x.h: inline function in a header"));
    }

    #[test]
    fn makefile_lists_and_sorting() {
        let mk = "TEST_PROGS := a.sh \\\n\tb.sh \\\n\td.sh\nTEST_PROGS += c.sh\nOTHER := z\n";
        let l = makefile_list(mk, "TEST_PROGS");
        assert_eq!(l, ["a.sh", "b.sh", "d.sh", "c.sh"]);
        assert_eq!(
            first_unsorted(&l),
            Some(("d.sh".to_string(), "c.sh".to_string()))
        );
        assert_eq!(first_unsorted(&list_lines("# c\na\nb\n")), None);
    }

    #[test]
    fn warnings_compare_without_line_numbers() {
        assert_eq!(
            normalize_warning("net/core/dev.c:123:5: warning: x"),
            normalize_warning("net/core/dev.c:130:9: warning: x")
        );
    }
}
