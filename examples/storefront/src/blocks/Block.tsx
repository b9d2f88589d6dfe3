// One component per block type, GenericBlock as the fallback; every block is
// framed so its views (≥ 50% visible, once per page view) and clicks are tracked.
import { useEffect, useRef, type ReactNode } from "react";

import { useStorefront } from "../storefront";
import { BannerBlock } from "./BannerBlock";
import { CallToActionBlock } from "./CallToActionBlock";
import { GenericBlock } from "./GenericBlock";
import { HeroBlock } from "./HeroBlock";
import { ProductGridBlock } from "./ProductGridBlock";
import { RichTextBlock } from "./RichTextBlock";
import { TestimonialBlock } from "./TestimonialBlock";
import type { PageBlock } from "./types";

function render(block: PageBlock): ReactNode {
  switch (block.__typename) {
    case "HeroBlock":
      return <HeroBlock block={block} />;
    case "BannerBlock":
      return <BannerBlock block={block} />;
    case "RichTextBlock":
      return <RichTextBlock block={block} />;
    case "ProductGridBlock":
      return <ProductGridBlock block={block} />;
    case "CallToActionBlock":
      return <CallToActionBlock block={block} />;
    case "TestimonialBlock":
      return <TestimonialBlock block={block} />;
    case "GenericBlock":
      return <GenericBlock block={block} />;
    default:
      // A block type added to the schema after this app was generated.
      return null;
  }
}

export function Block({ block }: { block: PageBlock }) {
  const { tracker, serverHtml } = useStorefront();
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = ref.current;
    return element ? tracker.observe(element, block) : undefined;
  }, [tracker, block]);
  function onClick(event: React.MouseEvent) {
    const target = (event.target as Element).closest("a, button");
    if (target === null) return;
    const label = target.textContent?.trim().slice(0, 200) ?? "";
    const href = target.getAttribute("href");
    tracker.click(block, href ? { label, href } : { label });
  }
  return (
    <div
      ref={ref}
      className="block"
      data-block-id={block.blockId}
      data-variant-id={block.variantId}
      data-reason={block.decision.reason}
      data-type={block.type}
      onClickCapture={onClick}
    >
      {serverHtml && block.renderedHtml ? (
        <div className="server-html" dangerouslySetInnerHTML={{ __html: block.renderedHtml }} />
      ) : (
        render(block)
      )}
    </div>
  );
}
