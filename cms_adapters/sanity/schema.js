// Tessera content model for Sanity Studio (v3): add these to `schema.types`.
// Field names are Tessera's editor vocabulary (docs/cms/sanity.md). Sanity has
// no JSON field type, so `fields`, `condition`, `experiment`, `localized` and
// `titles` are text fields holding JSON; Tessera parses them and names the
// field when the JSON is invalid. The block document type is `tesseraBlock`:
// Sanity reserves `block` (Portable Text), and `sanity schema validate` refuses it.
import {defineArrayMember, defineField, defineType} from 'sanity'

const BLOCK_TYPES = ['hero', 'banner', 'rich_text', 'product_grid', 'call_to_action', 'testimonial', 'recommendations']
const json = (name, title) => defineField({name, title, type: 'text', rows: 4})

export const variant = defineType({
  name: 'variant',
  title: 'Variant',
  type: 'object',
  fields: [
    defineField({name: 'variantId', title: 'Variant id', type: 'string', validation: (r) => r.required()}),
    json('fields', 'Fields (JSON)'),
    defineField({name: 'image', title: 'Image', type: 'image', fields: [{name: 'alt', type: 'string', title: 'Alternative text'}]}),
    defineField({name: 'audiences', title: 'Audiences', type: 'array', of: [{type: 'string'}]}),
    defineField({name: 'audienceMatch', title: 'Audience match', type: 'string', options: {list: ['any', 'all']}}),
    json('condition', 'Condition (JSON)'),
    defineField({name: 'priority', title: 'Priority', type: 'number', validation: (r) => r.integer()}),
    defineField({name: 'scheduleStart', title: 'Schedule start', type: 'datetime'}),
    defineField({name: 'scheduleEnd', title: 'Schedule end', type: 'datetime'}),
    defineField({name: 'scheduleTimezone', title: 'Schedule time zone', type: 'string'}),
    defineField({name: 'locales', title: 'Locales', type: 'array', of: [{type: 'string'}]}),
    defineField({name: 'tags', title: 'Tags', type: 'array', of: [{type: 'string'}]}),
    defineField({name: 'weight', title: 'Weight', type: 'number', validation: (r) => r.min(0)}),
    defineField({name: 'isDefault', title: 'Default variant', type: 'boolean'}),
    json('experiment', 'Experiment (JSON)'),
    defineField({name: 'ruleId', title: 'Rule id', type: 'string'}),
    json('localized', 'Localized overrides (JSON)'),
  ],
})

export const block = defineType({
  name: 'tesseraBlock',
  title: 'Block',
  type: 'document',
  fields: [
    defineField({name: 'blockId', title: 'Block id', type: 'string', validation: (r) => r.required()}),
    defineField({name: 'type', title: 'Type', type: 'string', options: {list: BLOCK_TYPES}, validation: (r) => r.required()}),
    defineField({name: 'variants', title: 'Variants', type: 'array', of: [defineArrayMember({type: 'variant'})], validation: (r) => r.required().min(1)}),
  ],
})

export const page = defineType({
  name: 'page',
  title: 'Page',
  type: 'document',
  fields: [
    defineField({name: 'slug', title: 'Slug', type: 'slug', validation: (r) => r.required()}),
    defineField({name: 'title', title: 'Title', type: 'string', validation: (r) => r.required()}),
    defineField({name: 'description', title: 'Description', type: 'text'}),
    defineField({name: 'locales', title: 'Locales', type: 'array', of: [{type: 'string'}]}),
    json('titles', 'Localized titles (JSON)'),
    defineField({name: 'blocks', title: 'Blocks', type: 'array', of: [defineArrayMember({type: 'reference', to: [{type: 'tesseraBlock'}]})]}),
  ],
})

// The product catalogue recommendations blocks draw from (docs/recommendations.md).
export const product = defineType({
  name: 'product',
  title: 'Product',
  type: 'document',
  fields: [
    defineField({name: 'sku', title: 'SKU', type: 'string', validation: (r) => r.required()}),
    defineField({name: 'name', title: 'Name', type: 'string', validation: (r) => r.required()}),
    defineField({name: 'price', title: 'Price', type: 'number', validation: (r) => r.required().min(0)}),
    defineField({name: 'currency', title: 'Currency', type: 'string', initialValue: 'USD'}),
    defineField({name: 'category', title: 'Category', type: 'string'}),
    defineField({name: 'tags', title: 'Tags', type: 'array', of: [{type: 'string'}]}),
    defineField({name: 'url', title: 'Product page URL', type: 'string'}),
    defineField({name: 'image', title: 'Image', type: 'image', fields: [{name: 'alt', type: 'string', title: 'Alternative text'}]}),
    defineField({name: 'brand', title: 'Brand', type: 'string'}),
    defineField({name: 'description', title: 'Description', type: 'text'}),
  ],
})

export const schemaTypes = [page, block, variant, product]
