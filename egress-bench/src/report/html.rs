//! `report.html`: summary.md as one page that needs nothing else to be read: the tables as
//! HTML, every plot's SVG inline where summary.md links it, a little CSS, no script but the
//! one that marks the page once every plot has a size (what the headless-browser test reads).

use std::path::Path;

use anyhow::{Context, Result};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;\
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:90%}th,td{border:1px solid \
#ccc;padding:.25em .5em}th{background:#f3f3f3}td{text-align:right}td:first-child{text-align:\
left}figure{margin:1em 0}figure svg{max-width:100%;height:auto}code{background:#f6f6f6}";

/// Marks `<body data-plots-rendered="N">` once loaded: N plots whose drawing has a size.
const CHECK: &str = "addEventListener('load',()=>{const n=[...document.querySelectorAll(\
'figure svg')].filter(s=>s.getBBox().width>0).length;document.body.dataset.plotsRendered=n;});";

/// Writes `dir/report.html` from `summary` (summary.md's text), with each plot summary.md
/// links (`![title](file.svg)`) read from `dir` and put inline.
///
/// # Errors
/// When a linked plot cannot be read or the page cannot be written.
pub fn write(dir: &Path, summary: &str) -> Result<()> {
    let mut events = Vec::new();
    let mut parser = Parser::new_ext(summary, Options::ENABLE_TABLES).peekable();
    while let Some(event) = parser.next() {
        if let Event::Start(Tag::Heading {
            level,
            classes,
            attrs,
            ..
        }) = event
        {
            // Headings get the anchors summary.md's links use (GitHub's).
            let mut inner = Vec::new();
            let mut text = String::new();
            for next in parser.by_ref() {
                if let Event::Text(t) | Event::Code(t) = &next {
                    text.push_str(t);
                }
                let end = matches!(next, Event::End(TagEnd::Heading(_)));
                inner.push(next);
                if end {
                    break;
                }
            }
            events.push(Event::Start(Tag::Heading {
                level,
                id: Some(super::markdown::anchor(&text).into()),
                classes,
                attrs,
            }));
            events.extend(inner);
            continue;
        }
        let Event::Start(Tag::Image { dest_url, .. }) = &event else {
            events.push(event);
            continue;
        };
        // The image's alt text follows until its end: the inline SVG replaces all of it.
        for inner in parser.by_ref() {
            if matches!(inner, Event::End(TagEnd::Image)) {
                break;
            }
        }
        let path = dir.join(dest_url.as_ref());
        let svg = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the plot {}", path.display()))?;
        let svg = svg.find("<svg").map_or(svg.as_str(), |start| &svg[start..]);
        events.push(Event::Html(format!("<figure>{svg}</figure>").into()));
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    let title = summary
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("egress-bench");
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style><script>{CHECK}</script></head><body>\n{body}</body></html>\n"
    );
    let out = dir.join("report.html");
    std::fs::write(&out, page).with_context(|| format!("writing {}", out.display()))
}
