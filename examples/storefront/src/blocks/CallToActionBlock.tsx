import { SmartLink } from "./SmartLink";
import type { BlockOf } from "./types";

export function CallToActionBlock({ block }: { block: BlockOf<"CallToActionBlock"> }) {
  return (
    <section className="cta">
      <h2>{block.heading}</h2>
      {block.body && <p>{block.body}</p>}
      <SmartLink href={block.button.url} className="button">
        {block.button.label}
      </SmartLink>
    </section>
  );
}
