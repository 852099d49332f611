export { default } from '../screens/SignIn';
