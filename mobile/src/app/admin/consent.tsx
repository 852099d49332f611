export { default } from '../../screens/admin/ConsentDocuments';
