// Strapi's core controller for products (find, findOne, create, update, delete).
const { factories } = require('@strapi/strapi');

module.exports = factories.createCoreController('api::product.product');
