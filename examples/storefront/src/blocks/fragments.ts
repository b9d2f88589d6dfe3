// One fragment per block type: the fields its component renders.
import { graphql } from "../gql";

export const HeroBlockFields = graphql(`
  fragment HeroBlockFields on HeroBlock {
    heading
    subheading
    image {
      url
      alt
      width
      height
    }
    cta {
      label
      url
    }
  }
`);

export const BannerBlockFields = graphql(`
  fragment BannerBlockFields on BannerBlock {
    text
    tone
    link {
      label
      url
    }
  }
`);

export const RichTextBlockFields = graphql(`
  fragment RichTextBlockFields on RichTextBlock {
    html
  }
`);

export const ProductGridBlockFields = graphql(`
  fragment ProductGridBlockFields on ProductGridBlock {
    title
    products {
      sku
      name
      price
      currency
      url
      badge
    }
  }
`);

export const CallToActionBlockFields = graphql(`
  fragment CallToActionBlockFields on CallToActionBlock {
    heading
    body
    button {
      label
      url
    }
  }
`);

export const TestimonialBlockFields = graphql(`
  fragment TestimonialBlockFields on TestimonialBlock {
    quote
    author
    role
    rating
  }
`);

export const GenericBlockFields = graphql(`
  fragment GenericBlockFields on GenericBlock {
    fields
  }
`);
