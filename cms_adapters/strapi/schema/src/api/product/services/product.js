// Strapi's core service for products.
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreService('api::product.product');
