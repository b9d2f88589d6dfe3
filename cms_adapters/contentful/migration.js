// Tessera content model for Contentful, in contentful-migration format.
// Apply with: npx contentful-cli space migration --space-id <SPACE> contentful/migration.js
// Field ids are Tessera's editor vocabulary (docs/cms/contentful.md).
module.exports = function (migration) {
  const variant = migration.createContentType('variant', {
    name: 'Variant',
    displayField: 'variantId',
    description: 'One version of a block, with its targeting metadata.',
  });
  variant.createField('variantId').name('Variant id').type('Symbol').required(true);
  variant.createField('fields').name('Fields').type('Object').required(true).localized(true);
  variant.createField('image').name('Image').type('Link').linkType('Asset');
  variant.createField('audiences').name('Audiences').type('Array').items({ type: 'Symbol' });
  variant.createField('audienceMatch').name('Audience match').type('Symbol')
    .validations([{ in: ['any', 'all'] }]);
  variant.createField('condition').name('Condition').type('Object');
  variant.createField('priority').name('Priority').type('Integer');
  variant.createField('scheduleStart').name('Schedule start').type('Date');
  variant.createField('scheduleEnd').name('Schedule end').type('Date');
  variant.createField('scheduleTimezone').name('Schedule time zone').type('Symbol');
  variant.createField('locales').name('Locales').type('Array').items({ type: 'Symbol' });
  variant.createField('tags').name('Tags').type('Array').items({ type: 'Symbol' });
  variant.createField('weight').name('Weight').type('Number');
  variant.createField('isDefault').name('Default variant').type('Boolean');
  variant.createField('experiment').name('Experiment').type('Object');
  variant.createField('ruleId').name('Rule id').type('Symbol');
  variant.createField('localized').name('Localized overrides').type('Object');

  const block = migration.createContentType('block', {
    name: 'Block',
    displayField: 'blockId',
    description: 'A modular content block; its variants are chosen per visitor.',
  });
  block.createField('blockId').name('Block id').type('Symbol').required(true)
    .validations([{ unique: true }]);
  block.createField('type').name('Type').type('Symbol').required(true)
    .validations([{ in: ['hero', 'banner', 'rich_text', 'product_grid', 'call_to_action', 'testimonial', 'recommendations'] }]);
  block.createField('variants').name('Variants').type('Array').required(true)
    .items({ type: 'Link', linkType: 'Entry', validations: [{ linkContentType: ['variant'] }] });

  const page = migration.createContentType('page', {
    name: 'Page',
    displayField: 'title',
    description: 'A page served by Tessera at its slug.',
  });
  page.createField('slug').name('Slug').type('Symbol').required(true)
    .validations([{ unique: true }, { regexp: { pattern: '^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$' } }]);
  page.createField('title').name('Title').type('Symbol').required(true).localized(true);
  page.createField('description').name('Description').type('Text');
  page.createField('locales').name('Locales').type('Array').items({ type: 'Symbol' });
  page.createField('titles').name('Localized titles').type('Object');
  page.createField('blocks').name('Blocks').type('Array').required(true)
    .items({ type: 'Link', linkType: 'Entry', validations: [{ linkContentType: ['block'] }] });

  // The product catalogue recommendations blocks draw from (docs/recommendations.md).
  const product = migration.createContentType('product', {
    name: 'Product',
    displayField: 'name',
    description: 'A product of the catalogue, recommended by Tessera.',
  });
  product.createField('sku').name('SKU').type('Symbol').required(true)
    .validations([{ unique: true }]);
  product.createField('name').name('Name').type('Symbol').required(true);
  product.createField('price').name('Price').type('Number').required(true)
    .validations([{ range: { min: 0 } }]);
  product.createField('currency').name('Currency').type('Symbol')
    .validations([{ regexp: { pattern: '^[A-Z]{3}$' } }]);
  product.createField('category').name('Category').type('Symbol');
  product.createField('tags').name('Tags').type('Array').items({ type: 'Symbol' });
  product.createField('url').name('Product page URL').type('Symbol');
  product.createField('image').name('Image').type('Link').linkType('Asset');
  product.createField('brand').name('Brand').type('Symbol');
  product.createField('description').name('Description').type('Text');
};
