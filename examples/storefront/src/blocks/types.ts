import type { StorefrontPageQuery } from "../gql/graphql";

/** A block as the page query returns it. */
export type PageBlock = NonNullable<StorefrontPageQuery["page"]>["blocks"][number];

/** The block of one GraphQL type. */
export type BlockOf<T extends PageBlock["__typename"]> = Extract<PageBlock, { __typename: T }>;
