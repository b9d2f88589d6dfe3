import type { BlockOf } from "./types";

export function TestimonialBlock({ block }: { block: BlockOf<"TestimonialBlock"> }) {
  return (
    <figure className="testimonial">
      <blockquote>{block.quote}</blockquote>
      <figcaption>
        {block.author}
        {block.role && <span>, {block.role}</span>}
        {block.rating !== null && (
          <span className="rating" aria-label={`${block.rating} of 5`}>
            {" "}
            {"★".repeat(block.rating)}
          </span>
        )}
      </figcaption>
    </figure>
  );
}
