// The app's GraphQL operations. `npm run codegen` turns each into a typed
// document in src/gql/ and an entry of src/gql/persisted-documents.json.
import { graphql } from "./gql";

export const PageQuery = graphql(`
  query StorefrontPage($slug: String!, $locale: String, $withHtml: Boolean!) {
    page(slug: $slug, locale: $locale) {
      slug
      title
      locale
      personalized
      cacheScope
      blocks {
        id
        blockId
        type
        variantId
        decision {
          reason
          experiment
          variation
        }
        renderedHtml @include(if: $withHtml)
        ...HeroBlockFields
        ...BannerBlockFields
        ...RichTextBlockFields
        ...ProductGridBlockFields
        ...CallToActionBlockFields
        ...TestimonialBlockFields
        ...GenericBlockFields
      }
    }
  }
`);

export const VisitorQuery = graphql(`
  query StorefrontVisitor {
    visitor {
      id
      known
      audiences
      personalized
      traits
      cart
    }
  }
`);
