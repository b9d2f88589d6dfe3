/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment HeroBlockFields on HeroBlock {\n    heading\n    subheading\n    image {\n      url\n      alt\n      width\n      height\n    }\n    cta {\n      label\n      url\n    }\n  }\n": typeof types.HeroBlockFieldsFragmentDoc,
    "\n  fragment BannerBlockFields on BannerBlock {\n    text\n    tone\n    link {\n      label\n      url\n    }\n  }\n": typeof types.BannerBlockFieldsFragmentDoc,
    "\n  fragment RichTextBlockFields on RichTextBlock {\n    html\n  }\n": typeof types.RichTextBlockFieldsFragmentDoc,
    "\n  fragment ProductGridBlockFields on ProductGridBlock {\n    title\n    products {\n      sku\n      name\n      price\n      currency\n      url\n      badge\n    }\n  }\n": typeof types.ProductGridBlockFieldsFragmentDoc,
    "\n  fragment CallToActionBlockFields on CallToActionBlock {\n    heading\n    body\n    button {\n      label\n      url\n    }\n  }\n": typeof types.CallToActionBlockFieldsFragmentDoc,
    "\n  fragment TestimonialBlockFields on TestimonialBlock {\n    quote\n    author\n    role\n    rating\n  }\n": typeof types.TestimonialBlockFieldsFragmentDoc,
    "\n  fragment GenericBlockFields on GenericBlock {\n    fields\n  }\n": typeof types.GenericBlockFieldsFragmentDoc,
    "\n  query StorefrontPage($slug: String!, $locale: String, $withHtml: Boolean!) {\n    page(slug: $slug, locale: $locale) {\n      slug\n      title\n      locale\n      personalized\n      cacheScope\n      blocks {\n        id\n        blockId\n        type\n        variantId\n        decision {\n          reason\n          experiment\n          variation\n        }\n        renderedHtml @include(if: $withHtml)\n        ...HeroBlockFields\n        ...BannerBlockFields\n        ...RichTextBlockFields\n        ...ProductGridBlockFields\n        ...CallToActionBlockFields\n        ...TestimonialBlockFields\n        ...GenericBlockFields\n      }\n    }\n  }\n": typeof types.StorefrontPageDocument,
    "\n  query StorefrontVisitor {\n    visitor {\n      id\n      known\n      audiences\n      personalized\n      traits\n      cart\n    }\n  }\n": typeof types.StorefrontVisitorDocument,
};
const documents: Documents = {
    "\n  fragment HeroBlockFields on HeroBlock {\n    heading\n    subheading\n    image {\n      url\n      alt\n      width\n      height\n    }\n    cta {\n      label\n      url\n    }\n  }\n": types.HeroBlockFieldsFragmentDoc,
    "\n  fragment BannerBlockFields on BannerBlock {\n    text\n    tone\n    link {\n      label\n      url\n    }\n  }\n": types.BannerBlockFieldsFragmentDoc,
    "\n  fragment RichTextBlockFields on RichTextBlock {\n    html\n  }\n": types.RichTextBlockFieldsFragmentDoc,
    "\n  fragment ProductGridBlockFields on ProductGridBlock {\n    title\n    products {\n      sku\n      name\n      price\n      currency\n      url\n      badge\n    }\n  }\n": types.ProductGridBlockFieldsFragmentDoc,
    "\n  fragment CallToActionBlockFields on CallToActionBlock {\n    heading\n    body\n    button {\n      label\n      url\n    }\n  }\n": types.CallToActionBlockFieldsFragmentDoc,
    "\n  fragment TestimonialBlockFields on TestimonialBlock {\n    quote\n    author\n    role\n    rating\n  }\n": types.TestimonialBlockFieldsFragmentDoc,
    "\n  fragment GenericBlockFields on GenericBlock {\n    fields\n  }\n": types.GenericBlockFieldsFragmentDoc,
    "\n  query StorefrontPage($slug: String!, $locale: String, $withHtml: Boolean!) {\n    page(slug: $slug, locale: $locale) {\n      slug\n      title\n      locale\n      personalized\n      cacheScope\n      blocks {\n        id\n        blockId\n        type\n        variantId\n        decision {\n          reason\n          experiment\n          variation\n        }\n        renderedHtml @include(if: $withHtml)\n        ...HeroBlockFields\n        ...BannerBlockFields\n        ...RichTextBlockFields\n        ...ProductGridBlockFields\n        ...CallToActionBlockFields\n        ...TestimonialBlockFields\n        ...GenericBlockFields\n      }\n    }\n  }\n": types.StorefrontPageDocument,
    "\n  query StorefrontVisitor {\n    visitor {\n      id\n      known\n      audiences\n      personalized\n      traits\n      cart\n    }\n  }\n": types.StorefrontVisitorDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment HeroBlockFields on HeroBlock {\n    heading\n    subheading\n    image {\n      url\n      alt\n      width\n      height\n    }\n    cta {\n      label\n      url\n    }\n  }\n"): (typeof documents)["\n  fragment HeroBlockFields on HeroBlock {\n    heading\n    subheading\n    image {\n      url\n      alt\n      width\n      height\n    }\n    cta {\n      label\n      url\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment BannerBlockFields on BannerBlock {\n    text\n    tone\n    link {\n      label\n      url\n    }\n  }\n"): (typeof documents)["\n  fragment BannerBlockFields on BannerBlock {\n    text\n    tone\n    link {\n      label\n      url\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment RichTextBlockFields on RichTextBlock {\n    html\n  }\n"): (typeof documents)["\n  fragment RichTextBlockFields on RichTextBlock {\n    html\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ProductGridBlockFields on ProductGridBlock {\n    title\n    products {\n      sku\n      name\n      price\n      currency\n      url\n      badge\n    }\n  }\n"): (typeof documents)["\n  fragment ProductGridBlockFields on ProductGridBlock {\n    title\n    products {\n      sku\n      name\n      price\n      currency\n      url\n      badge\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment CallToActionBlockFields on CallToActionBlock {\n    heading\n    body\n    button {\n      label\n      url\n    }\n  }\n"): (typeof documents)["\n  fragment CallToActionBlockFields on CallToActionBlock {\n    heading\n    body\n    button {\n      label\n      url\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TestimonialBlockFields on TestimonialBlock {\n    quote\n    author\n    role\n    rating\n  }\n"): (typeof documents)["\n  fragment TestimonialBlockFields on TestimonialBlock {\n    quote\n    author\n    role\n    rating\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment GenericBlockFields on GenericBlock {\n    fields\n  }\n"): (typeof documents)["\n  fragment GenericBlockFields on GenericBlock {\n    fields\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query StorefrontPage($slug: String!, $locale: String, $withHtml: Boolean!) {\n    page(slug: $slug, locale: $locale) {\n      slug\n      title\n      locale\n      personalized\n      cacheScope\n      blocks {\n        id\n        blockId\n        type\n        variantId\n        decision {\n          reason\n          experiment\n          variation\n        }\n        renderedHtml @include(if: $withHtml)\n        ...HeroBlockFields\n        ...BannerBlockFields\n        ...RichTextBlockFields\n        ...ProductGridBlockFields\n        ...CallToActionBlockFields\n        ...TestimonialBlockFields\n        ...GenericBlockFields\n      }\n    }\n  }\n"): (typeof documents)["\n  query StorefrontPage($slug: String!, $locale: String, $withHtml: Boolean!) {\n    page(slug: $slug, locale: $locale) {\n      slug\n      title\n      locale\n      personalized\n      cacheScope\n      blocks {\n        id\n        blockId\n        type\n        variantId\n        decision {\n          reason\n          experiment\n          variation\n        }\n        renderedHtml @include(if: $withHtml)\n        ...HeroBlockFields\n        ...BannerBlockFields\n        ...RichTextBlockFields\n        ...ProductGridBlockFields\n        ...CallToActionBlockFields\n        ...TestimonialBlockFields\n        ...GenericBlockFields\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query StorefrontVisitor {\n    visitor {\n      id\n      known\n      audiences\n      personalized\n      traits\n      cart\n    }\n  }\n"): (typeof documents)["\n  query StorefrontVisitor {\n    visitor {\n      id\n      known\n      audiences\n      personalized\n      traits\n      cart\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;