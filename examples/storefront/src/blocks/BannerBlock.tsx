import { SmartLink } from "./SmartLink";
import type { BlockOf } from "./types";

export function BannerBlock({ block }: { block: BlockOf<"BannerBlock"> }) {
  return (
    <aside className={`banner banner-${block.tone}`} data-testid="banner">
      <span>{block.text}</span>
      {block.link && <SmartLink href={block.link.url}>{block.link.label}</SmartLink>}
    </aside>
  );
}
