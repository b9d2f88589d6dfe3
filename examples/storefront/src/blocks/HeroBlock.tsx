import { SmartLink } from "./SmartLink";
import type { BlockOf } from "./types";

export function HeroBlock({ block }: { block: BlockOf<"HeroBlock"> }) {
  return (
    <section className="hero" data-testid="hero">
      <div className="hero-text">
        <h1>{block.heading}</h1>
        {block.subheading && <p>{block.subheading}</p>}
        {block.cta && (
          <SmartLink href={block.cta.url} className="button">
            {block.cta.label}
          </SmartLink>
        )}
      </div>
    </section>
  );
}
