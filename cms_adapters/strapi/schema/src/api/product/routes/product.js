// Strapi's core router: GET /api/products, /api/products/:documentId (and the write routes).
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreRouter('api::product.product');
