//! Markdown to HTML that is safe to put in a page: what WebChat and the Control UI show of a
//! model's reply, and a Matrix message's `formatted_body`. CommonMark by `pulldown-cmark`, then three rules on its events:
//!
//! - Raw HTML in the text (a block or inline) is shown as text, escaped, never as markup.
//! - A link keeps its target only when it is `http:`, `https:` or `mailto:`; anything else
//!   (`javascript:`, `data:`, …) becomes `#`. Links open in a new tab without a referrer.
//! - Images are not loaded (a reply could otherwise make the browser fetch any URL): they
//!   become links to their address, by the same rule.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

fn safe_url(url: &str) -> CowStr<'static> {
    let lower = url.trim().to_ascii_lowercase();
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        CowStr::from(url.to_string())
    } else {
        CowStr::from("#")
    }
}

/// `text` as markdown, rendered to HTML with the rules above.
pub fn to_safe_html(text: &str) -> String {
    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(&dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url,
            title,
            id,
            ..
        }) => Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: safe_url(&dest_url),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html.replace(
        "<a href=",
        "<a rel=\"noreferrer noopener\" target=\"_blank\" href=",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blocks_and_emphasis_render_and_their_contents_are_escaped() {
        let html = to_safe_html("**Done**:\n\n```sh\necho <b>hi</b> && ls\n```\n\nuse `a<b`");

        assert!(html.contains("<strong>Done</strong>"), "{html}");
        assert!(html.contains("<pre><code class=\"language-sh\">echo &lt;b&gt;hi&lt;/b&gt; &amp;&amp; ls\n</code></pre>"), "{html}");
        assert!(html.contains("<code>a&lt;b</code>"), "{html}");
    }

    #[test]
    fn raw_html_is_text_and_dangerous_links_and_images_are_defused() {
        let html = to_safe_html(
            "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(2)> [x](javascript:alert(3)) ![p](https://t.example/p.png) [ok](https://example.org)",
        );

        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://t.example/p.png\""), "{html}");
        assert!(
            html.contains(
                "rel=\"noreferrer noopener\" target=\"_blank\" href=\"https://example.org\""
            ),
            "{html}"
        );
    }
}
