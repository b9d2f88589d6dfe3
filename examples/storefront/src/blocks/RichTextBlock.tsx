import type { BlockOf } from "./types";

// Editors' HTML from the CMS: trusted like the rest of the content (Tessera
// renders it as stored). Sanitize here if your editors are not trusted.
export function RichTextBlock({ block }: { block: BlockOf<"RichTextBlock"> }) {
  return <section className="rich-text" dangerouslySetInnerHTML={{ __html: block.html }} />;
}
